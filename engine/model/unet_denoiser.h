// The fp32 UNet of a loaded model as a noise predictor (class labels for conditional models).
#pragma once

#include "engine/model/model_folder.h"
#include "engine/sampling/guidance.h"

namespace qdm {

ModelDenoiser unet_denoiser(UNet2DModel unet);

}  // namespace qdm
