// Request limits the service enforces before any work is queued, with INVALID_ARGUMENT
// messages that say which field to change and to what. Torch-free: the scheduler checks them
// without loading a model; the worker checks them again against the loaded model.
#pragma once

#include <grpcpp/support/status.h>

#include <string>

#include "qdm/v1/jobs.pb.h"
#include "qdm/v1/sampling.pb.h"

namespace qdm::service {

struct Limits {
  int max_images = 64;          // per sample request
  int max_steps = 1000;
  int max_calib_samples = 1024;
  int max_iters = 100000;
  int max_report_samples = 1024;
};

// The recipes this build knows (the engine's list; kept in one place for the service).
const std::vector<std::string>& recipe_names();

grpc::Status check_sampler(const v1::SamplerSpec& s, const Limits& limits);
grpc::Status check_quantize_options(const v1::QuantizeOptions& o, const Limits& limits);
grpc::Status check_sample_request(const v1::SampleRequest& r, const Limits& limits);

// Fills unset fields with the defaults (recipe tfmq, W4A8, 100 DDIM steps, ...).
void apply_defaults(v1::QuantizeOptions& o);

}  // namespace qdm::service
