// The one place where protocol messages become engine and format types and back, and where
// errors become gRPC statuses a client can act on. Handlers stay thin: validate, convert here,
// hand to the core, map what it throws here.
#pragma once

#include <grpcpp/support/status.h>

#include <nlohmann/json_fwd.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "format/quantize_options.h"
#include "format/sampler_options.h"
#include "qdm/v1/common.pb.h"
#include "qdm/v1/jobs.pb.h"

namespace qdm::service {

// A failed read or write of durable state (the job store). `full`: the disk is full.
class StoreError : public std::runtime_error {
 public:
  StoreError(const std::string& what, bool full = false) : std::runtime_error(what), full_(full) {}
  bool full() const { return full_; }

 private:
  bool full_;
};

// Status for an exception from the engine, the format layer or the store:
//   std::invalid_argument, ConfigError, ArtifactError, SafeTensorsError -> INVALID_ARGUMENT
//   StoreError -> RESOURCE_EXHAUSTED (disk full) or UNAVAILABLE
//   anything else -> INTERNAL
// The message never shows the server's paths (each of `hide` is cut out) and is capped.
grpc::Status status_from_exception(const std::exception& e, const std::string& context = "",
                                   const std::vector<std::string>& hide = {});
// Removes every occurrence of `hide` (with a trailing '/') from `message` and caps its length.
std::string public_message(std::string message, const std::vector<std::string>& hide = {});

// SamplerSpec <-> SamplerOptions; unset fields take `defaults` (an artifact's schedule).
SamplerOptions sampler_options(const v1::SamplerSpec& spec, const SamplerOptions& defaults);
void to_proto(const SamplerOptions& options, v1::SamplerSpec* spec);
v1::SamplerSpec::Kind to_proto(SamplerKind kind);

// QuantizeOptions with every unset field filled from QuantizeJobOptions' defaults.
void apply_defaults(v1::QuantizeOptions& options);
// QuantizeOptions -> the engine's job options (after apply_defaults). Throws
// std::invalid_argument naming the field.
QuantizeJobOptions quantize_job_options(const v1::QuantizeOptions& options);

// The typed fields of a quality report from its JSON (0 where absent), plus the JSON itself.
void fill_report(const nlohmann::json& report, v1::QualityReport* out);

}  // namespace qdm::service
