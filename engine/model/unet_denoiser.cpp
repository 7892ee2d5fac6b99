#include "engine/model/unet_denoiser.h"

namespace qdm {

Denoiser unet_denoiser(UNet2DModel unet) {
  return [unet](const at::Tensor& x, int t, int) mutable {
    return unet->forward(x, at::full({x.size(0)}, static_cast<float>(t), x.options().dtype(at::kFloat)));
  };
}

}  // namespace qdm
