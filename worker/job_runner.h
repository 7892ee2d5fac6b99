// Quantize jobs on a worker: each lease runs in its own thread (fetch the model, run the recipe
// through the engine, send the artifact back with FinishJob). Progress is read by the
// heartbeat; a revoked lease (cancelled, or lost to expiry) stops the job between iterations
// and sends nothing.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "qdm/v1/worker.grpc.pb.h"
#include "worker/lease_holder.h"
#include "worker/model_fetcher.h"
#include "worker/worker_metrics.h"

namespace qdm::worker {

class JobRunner final : public LeaseHolder {
 public:
  // work_dir: a folder per running job; reference_dir: fp32 quality-report images kept across jobs.
  JobRunner(ModelFetcher& fetcher, v1::WorkerGateway::StubInterface& scheduler, std::string work_dir,
            std::string reference_dir, std::string classifier_dir, WorkerMetrics& metrics, int slots, std::string token);
  ~JobRunner();

  void start(const v1::JobAssignment& assignment) override;
  void revoke(const std::string& lease_id) override;
  std::vector<v1::LeaseReport> reports() override;
  int free_slots() override;
  int running();
  void drain(std::chrono::seconds timeout) override;

 private:
  struct Running {
    v1::JobAssignment assignment;
    std::atomic<bool> cancelled{false};
    std::atomic<bool> finished{false};
    std::mutex mu;
    v1::LeaseReport report;
    std::thread thread;
  };
  void execute(Running& job);
  std::vector<std::string> hidden_paths() const;
  void send_result(const Running& job, bool ok, const std::string& error, const std::string& report_json,
                   const std::string& artifact_path);
  void reap();

  ModelFetcher& fetcher_;
  v1::WorkerGateway::StubInterface& scheduler_;
  std::string work_dir_, reference_dir_, classifier_dir_;
  WorkerMetrics& metrics_;
  int slots_;
  std::string token_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Running>> jobs_;  // by lease id
};

}  // namespace qdm::worker
