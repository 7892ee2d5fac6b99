// Model folders and artifacts on the wire: a header naming every file with its sha256, then
// chunks of at most 1 MiB (qdm.v1.UploadChunk). Used by Models.Upload (client -> scheduler),
// WorkerGateway.FetchModel (scheduler -> worker) and FinishJob (worker -> scheduler).
#pragma once

#include <grpcpp/support/status.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "qdm/v1/models.pb.h"

namespace qdm::service {

constexpr size_t kChunkBytes = 1 << 20;

// The files of a diffusers model folder that qdm reads, relative to `dir`:
// config.json, diffusion_pytorch_model.safetensors and the scheduler config when present.
std::vector<std::string> model_folder_files(const std::string& dir);

// Header (name + relative path -> sha256) for `files` under `dir`.
v1::UploadChunk::Header make_header(const std::string& name, const std::string& dir,
                                    const std::vector<std::string>& files);

// Streams `files` under `dir` as chunks; `write` returns false when the peer went away.
bool send_file_chunks(const std::string& dir, const std::vector<std::string>& files,
                      const std::function<bool(const v1::FileChunk&)>& write);

// Receives the files a header announced into `dir` (which must exist): chunks in order per
// file, every byte checked against the header's sha256 at finish(). Statuses say what is wrong.
class FileReceiver {
 public:
  FileReceiver(std::string dir, const std::map<std::string, std::string>& expected_sha256,
               int64_t max_total_bytes);
  grpc::Status add(const v1::FileChunk& chunk);
  grpc::Status finish();
  int64_t bytes() const { return total_; }

 private:
  std::string dir_;
  std::map<std::string, std::string> expected_;
  std::map<std::string, int64_t> received_;
  int64_t max_total_, total_ = 0;
};

// What a failed write of `what` (e.g. "the upload") answers: RESOURCE_EXHAUSTED when the disk
// is full (ENOSPC, EDQUOT), else INTERNAL; never the server's `path`, which is logged instead.
grpc::Status storage_error(const std::string& what, const std::string& path, int error);

// A folder removed with everything in it when the scope ends (a failed upload leaves nothing).
class ScratchDir {
 public:
  explicit ScratchDir(std::string path) : path_(std::move(path)) {}
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A relative path inside a folder: no "..", no absolute path, no empty part.
bool safe_relative_path(const std::string& path);
// Names of models and artifacts: 1-128 of [A-Za-z0-9._+-], not starting with '.'.
bool valid_name(const std::string& name);

}  // namespace qdm::service
