#include "engine/model/pipeline_folder.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/model/model_folder.h"
#include "format/model_folder.h"
#include "format/pipeline_folder.h"
#include "format/safetensors.h"
#include "format/sha256.h"

namespace qdm {
namespace fs = std::filesystem;

bool is_pipeline_folder(const std::string& dir) { return is_pipeline_dir(dir); }

TextToImagePipeline load_pipeline(const std::string& dir) {
  if (!is_pipeline_folder(dir)) throw ModelLoadError("not a pipeline folder: no model_index.json");
  const PipelineFiles files = check_pipeline_folder(dir);  // every check the scheduler runs on uploads
  TextToImagePipeline p{dir, ClipTokenizer::load(dir + "/tokenizer")};
  LoadedTextEncoder text = load_text_encoder(dir + "/text_encoder");
  p.text_encoder = text.model;
  p.text_encoder_sha256 = text.weights_sha256;
  LoadedVae vae = load_vae(dir + "/vae");
  p.vae = vae.model;
  p.vae_sha256 = vae.weights_sha256;
  p.unet = UNet2DModel(files.unet);
  p.unet_dtype = load_unet_weights(*p.unet, SafeTensors::read_file(files.unet_weights));
  p.unet->eval();
  p.unet_sha256 = sha256_file(files.unet_weights);
  p.scheduler = files.scheduler;
  return p;
}

}  // namespace qdm
