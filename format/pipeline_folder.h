// A diffusers StableDiffusionPipeline folder checked without LibTorch: model_index.json names the
// supported classes, each component's weights match the tensors its config implies (from the
// component's description), the tokenizer loads, and the parts fit together. The scheduler
// validates uploads with it; the engine's loader runs the same checks before building modules.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "format/autoencoder_kl_config.h"
#include "format/clip_text_config.h"
#include "format/noise_schedule.h"
#include "format/unet_config.h"
#include "format/unet_tensors.h"  // ModelLimits

namespace qdm {

class SafeTensors;

struct PipelineFiles {
  std::string dir;
  UNetConfig unet;
  AutoencoderKLConfig vae;
  ClipTextConfig text_encoder;
  SchedulerConfig scheduler;
  std::string unet_weights, vae_weights, text_encoder_weights;  // paths
  // The weights files as the check read them, when asked to keep them (loaders then read each
  // file once); null otherwise.
  std::shared_ptr<const SafeTensors> unet_file, vae_file, text_encoder_file;
};

// Whether dir holds model_index.json.
bool is_pipeline_dir(const std::string& dir);

// Throws ConfigError (or SafeTensorsError) naming the component file and field or tensor.
// keep_files: PipelineFiles keeps the weights files it read (a loader's single read).
PipelineFiles check_pipeline_folder(const std::string& dir, const ModelLimits& limits = {}, bool keep_files = false);

// The files a pipeline folder may hold (relative paths), the ones transferred on upload and to
// workers: model_index.json, scheduler/, unet/, vae/, text_encoder/, tokenizer/.
const std::vector<std::string>& pipeline_file_names();
// Those present in dir (the required ones are checked by check_pipeline_folder).
std::vector<std::string> pipeline_files(const std::string& dir);

// Stored text-encoder tensors a CLIPTextModel does not use (position_ids, a text projection).
bool ignored_text_encoder_tensor(const std::string& name);

}  // namespace qdm
