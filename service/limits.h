// Request limits the service enforces before any work is queued, with INVALID_ARGUMENT
// messages that say which field to change and to what. Torch-free: the scheduler checks them
// without loading a model; the worker checks them again against the loaded model.
#pragma once

#include <google/protobuf/message.h>
#include <grpcpp/support/status.h>

#include <string>

#include "format/autoencoder_kl_config.h"
#include "format/unet_config.h"
#include "qdm/v1/jobs.pb.h"
#include "qdm/v1/sampling.pb.h"

namespace qdm::service {

struct Limits {
  int max_images = 64;          // per sample request
  int64_t max_request_pixels = 64LL * 512 * 512;  // num_images x height x width of a text-to-image request
  int max_steps = 1000;
  int max_calib_samples = 1024;
  int max_iters = 100000;
  int max_report_samples = 1024;
  int64_t max_job_memory = 0;  // a quantize job's estimated peak bytes (format/job_memory.h); 0: no limit
  int64_t max_sample_memory = 0;  // a sample request's estimated peak bytes (format/sample_memory.h); 0: no limit
};

grpc::Status check_sampler(const v1::SamplerSpec& s, const Limits& limits);
grpc::Status check_quantize_options(const v1::QuantizeOptions& o, const Limits& limits);
grpc::Status check_sample_request(const v1::SampleRequest& r, const Limits& limits);
// A sample request's cost on its model before it is queued: RESOURCE_EXHAUSTED naming the
// estimated peak memory (format/sample_memory.h) and the limit when it is over
// limits.max_sample_memory; INVALID_ARGUMENT for a size the model cannot sample. `vae`: a
// text-to-image pipeline's, null for a pixel-space UNet.
grpc::Status check_sample_memory(const v1::SampleRequest& r, const UNetConfig& unet, const AutoencoderKLConfig* vae,
                                 const Limits& limits);

// INVALID_ARGUMENT unless `name` can be a model or artifact name (never a path).
grpc::Status check_name(const std::string& field, const std::string& name);

// INVALID_ARGUMENT naming the first enum field, anywhere in `message` (nested, repeated), whose
// value the protocol does not define (proto3 keeps unknown numbers): every request is checked
// with it before anything else.
grpc::Status check_enum_values(const google::protobuf::Message& message);

}  // namespace qdm::service
