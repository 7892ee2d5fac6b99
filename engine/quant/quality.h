// Agreement of a quantized model with its fp32 source: per-image MSE / PSNR on the same
// seeds, and cosine similarity of the temporal features (TFMQ-DM's disturbance metric).
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "engine/model/unet_2d.h"
#include "engine/quant/quant_model.h"

namespace qdm {

struct ImageAgreement {
  double mse = 0;            // mean over images of per-image MSE, pixels in [0, 1]
  double psnr = 0;           // mean over images of per-image PSNR in dB, pixels in [0, 1]
  double max_abs_pixel = 0;  // largest difference in 8-bit pixel levels
};
ImageAgreement compare_images(const at::Tensor& images, const at::Tensor& reference);

// Mean over the schedule's steps and the resnets of cos(fp feature, quantized feature).
double temporal_feature_cosine(UNet2DModel fp, QuantizedUNet& quantized, const std::vector<int>& timesteps);

}  // namespace qdm
