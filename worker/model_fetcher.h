// Local copies of the scheduler's models and artifacts: fetched once through
// WorkerGateway.FetchModel into <cache>/{models,artifacts}/<name>/ and reused while the
// scheduler's sha256 of every file matches (a re-uploaded name is fetched again).
#pragma once

#include <mutex>
#include <string>

#include "qdm/v1/worker.grpc.pb.h"

namespace qdm::worker {

class FetchError : public std::runtime_error {
 public:
  FetchError(grpc::StatusCode code, const std::string& message) : std::runtime_error(message), code(code) {}
  grpc::StatusCode code;
};

class ModelFetcher {
 public:
  ModelFetcher(std::string cache_dir, v1::WorkerGateway::StubInterface& scheduler, std::string token);
  // The local folder of a model, or the local file of an artifact. Throws FetchError.
  // `version` (optional) receives the scheduler's manifest: it changes when the content does.
  std::string fetch(const std::string& name, bool artifact, std::string* version = nullptr);
  // Where local copies live: never named in a status a client sees.
  const std::string& cache_dir() const { return cache_; }

 private:
  std::string cache_;
  v1::WorkerGateway::StubInterface& scheduler_;
  std::string token_;
  std::mutex mu_;
};

}  // namespace qdm::worker
