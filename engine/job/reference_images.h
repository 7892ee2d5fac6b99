// The fp32 images a quantize job's quality report compares against, cached on disk. Sampling
// them is half of the report's time, and they depend only on the model (weights, config,
// noise schedule), the sampler and the seeds, so later jobs on the same model and sampler
// reuse them. A cache file whose key does not match, or that does not load, is sampled again
// and replaced (written to a temporary name and renamed, so readers never see half a file).
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <string>

#include "engine/model/model_folder.h"
#include "engine/sampling/pipeline.h"

namespace qdm {

// What the images depend on, as one string; the cache file is named by its hash.
std::string reference_key(const DiffusionModel& model, const SampleRequest& request);

// Whether a valid cache file for these images exists (it is checked again when read).
bool reference_cached(const DiffusionModel& model, const SampleRequest& request, const std::string& cache_dir);
// (num_images, C, S, S) in [-1, 1]. cache_dir empty: no cache. `from_cache` says whether the
// images were read rather than sampled.
at::Tensor reference_images(const DiffusionModel& model, const SampleRequest& request, const std::string& cache_dir,
                            const std::function<bool(const SampleProgress&)>& on_progress = nullptr,
                            bool* from_cache = nullptr);

}  // namespace qdm
