#include "worker/job_runner.h"

#include <grpcpp/client_context.h>
#include <spdlog/spdlog.h>

#include <filesystem>

#include "engine/job/quantize_job.h"
#include "format/timesteps.h"
#include "format/sha256.h"
#include "service/auth.h"
#include "service/convert.h"
#include "service/file_transfer.h"

namespace fs = std::filesystem;

namespace qdm::worker {
namespace {

}  // namespace

JobRunner::JobRunner(ModelFetcher& fetcher, v1::WorkerGateway::StubInterface& scheduler, std::string work_dir,
                     std::string reference_dir, std::string classifier_dir, WorkerMetrics& metrics, int slots,
                     std::string token)
    : fetcher_(fetcher), scheduler_(scheduler), work_dir_(std::move(work_dir)), reference_dir_(std::move(reference_dir)),
      classifier_dir_(std::move(classifier_dir)), metrics_(metrics), slots_(slots), token_(std::move(token)) {
  fs::create_directories(work_dir_);
}

JobRunner::~JobRunner() { drain(std::chrono::seconds(0)); }

void JobRunner::start(const v1::JobAssignment& assignment) {
  std::lock_guard<std::mutex> lock(mu_);
  auto job = std::make_unique<Running>();
  job->assignment = assignment;
  job->report.set_job_id(assignment.job_id());
  job->report.set_lease_id(assignment.lease_id());
  job->report.set_stage("starting");
  Running* raw = job.get();
  job->thread = std::thread([this, raw] { execute(*raw); });
  jobs_[assignment.lease_id()] = std::move(job);
  metrics_.jobs_running.Set(static_cast<double>(jobs_.size()));
}

void JobRunner::revoke(const std::string& lease_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(lease_id);
  if (it != jobs_.end() && !it->second->cancelled.exchange(true))
    spdlog::info("job {}: lease revoked, stopping", it->second->assignment.job_id());
}

void JobRunner::reap() {
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if (it->second->finished) {
      it->second->thread.join();
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
  metrics_.jobs_running.Set(static_cast<double>(jobs_.size()));
}

std::vector<v1::LeaseReport> JobRunner::reports() {
  std::lock_guard<std::mutex> lock(mu_);
  reap();
  std::vector<v1::LeaseReport> out;
  for (auto& [id, job] : jobs_) {
    if (job->cancelled) continue;
    std::lock_guard<std::mutex> l(job->mu);
    out.push_back(job->report);
  }
  return out;
}

int JobRunner::free_slots() {
  std::lock_guard<std::mutex> lock(mu_);
  reap();
  return slots_ - static_cast<int>(jobs_.size());
}

int JobRunner::running() {
  std::lock_guard<std::mutex> lock(mu_);
  reap();
  return static_cast<int>(jobs_.size());
}

void JobRunner::drain(std::chrono::seconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (running() > 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, job] : jobs_) job->cancelled = true;
  for (auto& [id, job] : jobs_) job->thread.join();
  jobs_.clear();
}

std::vector<std::string> JobRunner::hidden_paths() const {
  // The worker's own folders never reach a client: names stay relative to them.
  return {fs::absolute(work_dir_).parent_path().string(), fs::path(work_dir_).parent_path().string(), reference_dir_,
          classifier_dir_};
}

void JobRunner::execute(Running& job) {
  const auto& a = job.assignment;
  const fs::path job_dir = fs::path(work_dir_) / a.job_id();
  fs::create_directories(job_dir);
  const std::string out = (job_dir / "artifact.safetensors").string();
  spdlog::info("job {}: {} on {} (attempt {})", a.job_id(), a.options().recipe(), a.model(), a.attempt());
  try {
    QuantizeJobOptions options = service::quantize_job_options(a.options());
    options.source_name = a.model();
    options.classifier_dir = classifier_dir_;
    options.reference_cache_dir = reference_dir_;
    options.cache_dir = fs::path(work_dir_).parent_path().string();
    // A search (tmpq) saves each generation here: a job leased again after a kill resumes it.
    options.recipe.search.state_dir = (fs::path(work_dir_).parent_path() / "search" / a.job_id()).string();
    const std::string dir = fetcher_.fetch(a.model(), false);
    {
      std::lock_guard<std::mutex> l(job.mu);
      job.report.set_stage("loading model");
    }
    const DiffusionModel model = load_model_folder(dir);
    const QuantizeJobResult result = quantize_to_artifact(model, options, out, [&](const QuantizeJobProgress& p) {
      std::lock_guard<std::mutex> l(job.mu);
      job.report.set_stage(p.stage);
      job.report.set_progress(p.overall);
      if (p.loss > 0) job.report.set_loss(p.loss);
      return !job.cancelled.load();
    });
    nlohmann::json report = result.report.is_object() ? result.report : nlohmann::json::object();
    report["timings"] = result.timings;
    send_result(job, true, "", report.dump(), out);
  } catch (const QuantizeCancelled&) {
    spdlog::info("job {}: stopped", a.job_id());
  } catch (const std::invalid_argument& e) {
    send_result(job, false, "bad options: " + service::public_message(e.what(), hidden_paths()), "", "");
  } catch (const std::exception& e) {
    spdlog::error("job {} failed: {}", a.job_id(), e.what());
    send_result(job, false, service::public_message(e.what(), hidden_paths()), "", "");
  }
  fs::remove_all(job_dir);
  if (!job.cancelled) fs::remove_all(fs::path(work_dir_).parent_path() / "search" / a.job_id());  // finished either way
  job.finished = true;
}

void JobRunner::send_result(const Running& job, bool ok, const std::string& error, const std::string& report_json,
                            const std::string& artifact_path) {
  // Retried while the scheduler is unreachable (restarting): the lease outlives a short outage.
  for (int attempt = 0; attempt < 60 && !job.cancelled; ++attempt) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
    service::add_bearer(ctx, token_);
    v1::FinishJobResponse response;
    auto writer = scheduler_.FinishJob(&ctx, &response);
    v1::FinishJobChunk header;
    auto* h = header.mutable_header();
    h->set_job_id(job.assignment.job_id());
    h->set_lease_id(job.assignment.lease_id());
    h->set_succeeded(ok);
    h->set_error(error);
    h->set_report_json(report_json);
    if (ok) {
      h->set_artifact_sha256(sha256_file(artifact_path));
      h->set_artifact_bytes(static_cast<int64_t>(fs::file_size(artifact_path)));
    }
    bool sent = writer->Write(header);
    if (sent && ok) {
      const fs::path p(artifact_path);
      sent = service::send_file_chunks(p.parent_path().string(), {p.filename().string()}, [&](const v1::FileChunk& c) {
        v1::FinishJobChunk m;
        *m.mutable_chunk() = c;
        return writer->Write(m);
      });
    }
    writer->WritesDone();
    const grpc::Status status = writer->Finish();
    if (status.ok()) {
      spdlog::info("job {}: result accepted", job.assignment.job_id());
      return;
    }
    if (status.error_code() != grpc::UNAVAILABLE) {
      spdlog::warn("job {}: result refused: {}", job.assignment.job_id(), status.error_message());
      return;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

}  // namespace qdm::worker
