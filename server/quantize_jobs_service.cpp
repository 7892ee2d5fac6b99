#include "server/quantize_jobs_service.h"

#include <spdlog/spdlog.h>

#include "format/echo.h"
#include <filesystem>

#include "format/job_memory.h"
#include "format/pipeline_folder.h"
#include "format/model_folder.h"
#include "service/convert.h"

namespace qdm::server {
namespace {


grpc::Status not_found(const std::string& id) {
  return {grpc::NOT_FOUND, "no job with id " + echo(id) + "; qdm jobs list shows the ids"};
}

grpc::Status check_id(const std::string& id) {
  if (id.empty()) return {grpc::INVALID_ARGUMENT, "id is empty; give a job id (qdm jobs list shows them)"};
  if (id.size() > 128) return {grpc::INVALID_ARGUMENT, "id " + echo(id) + " is not a job id"};
  return grpc::Status::OK;
}

std::string artifact_base(const std::string& model, const v1::QuantizeOptions& o) {
  std::string recipe = o.recipe();
  for (auto& c : recipe)
    if (c == '+') c = '-';
  return model + "-" + recipe + "-w" + std::to_string(o.weight_bits()) + "a" + std::to_string(o.act_bits());
}

}  // namespace

std::optional<MemoryEstimate> QuantizeJobsService::estimate(const std::string& model, const v1::QuantizeOptions& options) const {
  const auto dir = models_.model_dir(model);
  if (!dir) return std::nullopt;
  try {
    const std::optional<UNetConfig> config = models_.config_of(model, false);  // a pipeline's: its UNet's
    if (!config) return std::nullopt;
    const RecipeOptions recipe = service::quantize_job_options(options).recipe;
    std::optional<AutoencoderKLConfig> vae;  // a pipeline quantizing its VAE decoder counts it too
    if (recipe.quantizes("vae_decoder") && is_pipeline_dir(*dir))
      vae = AutoencoderKLConfig::from_file((std::filesystem::path(*dir) / "vae" / "config.json").string());
    return estimate_job_memory(recipe, *config, vae ? &*vae : nullptr);
  } catch (const std::exception&) {
    return std::nullopt;  // a model that no longer opens: the job fails with its own message
  }
}

void QuantizeJobsService::annotate(v1::Job& job) const {
  if (const auto m = estimate(job.model(), job.options())) {
    job.set_estimated_memory_bytes(m->total());
    job.set_estimated_memory(m->summary());
  }
}

QuantizeJobsService::QuantizeJobsService(const service::TokenAuth& auth, JobStore& jobs, ModelStore& models, SchedulerMetrics& metrics,
                                         service::Limits limits)
    : auth_(auth), jobs_(jobs), models_(models), metrics_(metrics), limits_(limits) {}

grpc::Status QuantizeJobsService::submit(const v1::SubmitJobRequest& request, v1::Job* job) {
  if (auto s = service::check_enum_values(request); !s.ok()) return s;
  if (auto s = service::check_name("model", request.model()); !s.ok()) return s;
  if (!models_.model_dir(request.model()))
    return {grpc::NOT_FOUND, "no fp32 model named " + echo(request.model()) +
                                 " (qdm models list shows them, qdm models upload adds one)"};
  if (request.idempotency_key().size() > 256)
    return {grpc::INVALID_ARGUMENT, "idempotency_key is longer than 256 bytes"};
  v1::QuantizeOptions options = request.options();
  service::apply_defaults(options);
  if (auto s = service::check_quantize_options(options, limits_); !s.ok()) return s;
  // Calibration prompts: a text-to-image pipeline needs them (or its calibration_prompts.txt),
  // other models take none.
  if (const auto dir = models_.model_dir(request.model())) {
    const bool pipeline = is_pipeline_dir(*dir);
    if (!pipeline && options.calibration_prompt_size() > 0)
      return {grpc::INVALID_ARGUMENT, "options.calibration_prompt is for text-to-image pipelines; model " + echo(request.model()) +
                                          " has no text encoder"};
    for (const auto& c : options.components())
      if (!pipeline && c != "unet")
        return {grpc::INVALID_ARGUMENT, "options.components: model " + echo(request.model()) +
                                            " is a UNet without a text encoder or VAE; quantize only its unet"};
    if (pipeline && options.calibration_prompt_size() == 0 && !std::filesystem::exists(std::filesystem::path(*dir) / "calibration_prompts.txt"))
      return {grpc::INVALID_ARGUMENT, "model " + echo(request.model()) + " is a text-to-image pipeline: give options.calibration_prompt "
                                          "(qdm submit --calib-prompt), or upload it with a calibration_prompts.txt"};
  }
  // Its cost before any work: the estimated peak memory against this service's limit.
  const std::optional<MemoryEstimate> need = estimate(request.model(), options);
  if (!need) return {grpc::FAILED_PRECONDITION, "model " + echo(request.model()) + " cannot be opened; upload it again"};
  if (limits_.max_job_memory > 0 && need->total() > limits_.max_job_memory)
    return {grpc::RESOURCE_EXHAUSTED, "this job needs about " + need->summary() + ", over the " +
                                          format_bytes(limits_.max_job_memory) +
                                          " a job may use here (--max-job-memory); lower options.calib_samples or "
                                          "sampler.steps (or the recipe's batch and trajectory counts)"};
  if (request.validate_only()) {
    job->set_model(request.model());
    *job->mutable_options() = options;
    job->set_estimated_memory_bytes(need->total());
    job->set_estimated_memory(need->summary());
    return grpc::Status::OK;
  }
  bool created = false;
  try {
    *job = jobs_.submit(request.model(), options, request.idempotency_key(), artifact_base(request.model(), options),
                        &created);
  } catch (const QueueFull& e) {
    return {grpc::RESOURCE_EXHAUSTED, e.what()};
  }
  annotate(*job);
  if (created) spdlog::info("job {} submitted: model={} recipe={} w{}a{}, about {}", job->id(), job->model(),
                            options.recipe(), options.weight_bits(), options.act_bits(), need->summary());
  return grpc::Status::OK;
}

grpc::Status QuantizeJobsService::Submit(grpc::ServerContext* context, const v1::SubmitJobRequest* request, v1::Job* job) {
  if (auto denied = auth_.check(*context, service::Scope::kWrite); !denied.ok())
    return denied;
  grpc::Status status;
  try {
    status = submit(*request, job);
  } catch (const std::exception& e) {
    status = metrics_.store_failure("QuantizeJobs/Submit", e);
  }
  return status;
}

grpc::Status QuantizeJobsService::Get(grpc::ServerContext* context, const v1::GetJobRequest* request, v1::Job* job) {
  if (auto denied = auth_.check(*context, service::Scope::kRead); !denied.ok())
    return denied;
  if (auto s = check_id(request->id()); !s.ok()) return s;
  try {
    auto found = jobs_.get(request->id());
    if (!found) return not_found(request->id());
    *job = *found;
  } catch (const std::exception& e) {
    return metrics_.store_failure("QuantizeJobs/Get", e);
  }
  annotate(*job);
  return grpc::Status::OK;
}

grpc::Status QuantizeJobsService::List(grpc::ServerContext* context, const v1::ListJobsRequest* request,
                                       v1::ListJobsResponse* response) {
  if (auto denied = auth_.check(*context, service::Scope::kRead); !denied.ok())
    return denied;
  auto status = [&]() -> grpc::Status {
    if (auto s = service::check_enum_values(*request); !s.ok()) return s;
    int page_size = request->page_size() == 0 ? 50 : request->page_size();
    if (page_size < 0 || page_size > 500) return {grpc::INVALID_ARGUMENT, "page_size must be 1..500 (0: 50)"};
    std::vector<v1::Job::State> states;
    for (int s : request->states()) {
      if (!v1::Job::State_IsValid(s) || s == v1::Job::STATE_UNSPECIFIED)
        return {grpc::INVALID_ARGUMENT, "states holds " + std::to_string(s) + ", not a job state"};
      states.push_back(static_cast<v1::Job::State>(s));
    }
    try {
      JobPage page = jobs_.list(states, page_size, request->page_token());
      for (auto& j : page.jobs) {
        annotate(j);
        *response->add_jobs() = std::move(j);
      }
      response->set_next_page_token(page.next_page_token);
    } catch (const std::invalid_argument& e) {
      return {grpc::INVALID_ARGUMENT, e.what()};
    } catch (const std::exception& e) {
      return metrics_.store_failure("QuantizeJobs/List", e);
    }
    return grpc::Status::OK;
  }();
  return status;
}

grpc::Status QuantizeJobsService::Cancel(grpc::ServerContext* context, const v1::CancelJobRequest* request, v1::Job* job) {
  if (auto denied = auth_.check(*context, service::Scope::kWrite); !denied.ok())
    return denied;
  if (auto s = check_id(request->id()); !s.ok()) return s;
  bool changed = false;
  std::optional<v1::Job> found;
  try {
    found = jobs_.cancel(request->id(), &changed);
  } catch (const std::exception& e) {
    return metrics_.store_failure("QuantizeJobs/Cancel", e);
  }
  if (!found) return not_found(request->id());
  if (!changed)
    return {grpc::FAILED_PRECONDITION, "job " + request->id() + " already finished (" +
                                                               v1::Job::State_Name(found->state()) + ")"};
  spdlog::info("job {} cancelled", request->id());
  *job = *found;
  annotate(*job);
  return grpc::Status::OK;
}

grpc::Status QuantizeJobsService::Watch(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                                        grpc::ServerWriter<v1::Job>* writer) {
  if (auto denied = auth_.check(*context, service::Scope::kRead); !denied.ok())
    return denied;
  if (auto s = check_id(request->id()); !s.ok()) return s;
  uint64_t seen = jobs_.version();
  std::string last;
  while (true) {
    std::optional<v1::Job> job;
    try {
      job = jobs_.get(request->id());
    } catch (const std::exception& e) {
      return metrics_.store_failure("QuantizeJobs/Watch", e);
    }
    if (!job) return not_found(request->id());
    annotate(*job);
    // Only the latest state is sent: a slow client skips intermediate updates.
    std::string bytes = job->SerializeAsString();
    if (bytes != last) {
      if (!writer->Write(*job)) break;
      last = std::move(bytes);
    }
    if (is_finished(job->state())) break;
    while (!context->IsCancelled() && !stopping_) {
      const uint64_t v = jobs_.wait_for_change(seen, std::chrono::milliseconds(500));
      if (v != seen) {
        seen = v;
        break;
      }
    }
    if (context->IsCancelled()) return grpc::Status::CANCELLED;
    if (stopping_) return {grpc::UNAVAILABLE, "the scheduler is shutting down; watch again"};
  }
  return grpc::Status::OK;
}

}  // namespace qdm::server
