// The fp32 UNet of a loaded model as a sampler Denoiser.
#pragma once

#include "engine/model/model_folder.h"
#include "engine/sampling/samplers.h"

namespace qdm {

Denoiser unet_denoiser(UNet2DModel unet);

}  // namespace qdm
