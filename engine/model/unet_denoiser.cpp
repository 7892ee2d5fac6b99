#include "engine/model/unet_denoiser.h"

namespace qdm {

ModelDenoiser unet_denoiser(UNet2DModel unet) {
  return [unet](const at::Tensor& x, int t, int, const at::Tensor& labels) mutable {
    return unet->forward(x, at::full({x.size(0)}, static_cast<float>(t), x.options().dtype(at::kFloat)), labels);
  };
}

}  // namespace qdm
