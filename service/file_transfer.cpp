#include "service/file_transfer.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "format/echo.h"
#include "format/pipeline_folder.h"
#include "format/sha256.h"

namespace fs = std::filesystem;

namespace qdm::service {

std::vector<std::string> model_folder_files(const std::string& dir) {
  if (is_pipeline_dir(dir)) return pipeline_files(dir);
  std::vector<std::string> files = {"config.json", "diffusion_pytorch_model.safetensors"};
  for (const char* s : {"scheduler/scheduler_config.json", "scheduler_config.json"})
    if (fs::exists(fs::path(dir) / s)) {
      files.push_back(s);
      break;
    }
  return files;
}

v1::UploadChunk::Header make_header(const std::string& name, const std::string& dir,
                                    const std::vector<std::string>& files) {
  v1::UploadChunk::Header h;
  h.set_name(name);
  for (const auto& f : files) (*h.mutable_files())[f] = sha256_file((fs::path(dir) / f).string());
  return h;
}

bool send_file_chunks(const std::string& dir, const std::vector<std::string>& files,
                      const std::function<bool(const v1::FileChunk&)>& write) {
  std::string buf(kChunkBytes, '\0');
  for (const auto& f : files) {
    std::ifstream in(fs::path(dir) / f, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + (fs::path(dir) / f).string());
    int64_t offset = 0;
    bool sent_any = false;
    while (true) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      const auto n = in.gcount();
      if (n <= 0 && sent_any) break;
      v1::FileChunk c;
      c.set_path(f);
      c.set_offset(offset);
      c.set_data(buf.data(), static_cast<size_t>(n));
      if (!write(c)) return false;
      sent_any = true;
      offset += n;
      if (n < static_cast<std::streamsize>(buf.size())) break;
    }
  }
  return true;
}

bool safe_relative_path(const std::string& path) {
  if (path.empty() || path.front() == '/') return false;
  for (const auto& part : fs::path(path))
    if (part == ".." || part == "." || part.empty()) return false;
  return true;
}

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 128 || name.front() == '.') return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '+' || c == '-')) return false;
  return true;
}

FileReceiver::FileReceiver(std::string dir, const std::map<std::string, std::string>& expected_sha256,
                           int64_t max_total_bytes)
    : dir_(std::move(dir)), expected_(expected_sha256), max_total_(max_total_bytes) {}

grpc::Status storage_error(const std::string& what, const std::string& path, int error) {
  spdlog::error("cannot write {}: {}", path, std::strerror(error));  // the server's path stays in its log
  if (error == ENOSPC || error == EDQUOT)
    return {grpc::RESOURCE_EXHAUSTED, "the server's disk is full: " + what + " was not stored (nothing half-written "
                                      "is kept); retry when an operator has freed space"};
  return {grpc::INTERNAL, what + " could not be written on the server (" + std::strerror(error) + ")"};
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  if (!path_.empty()) fs::remove_all(path_, ec);
}

grpc::Status FileReceiver::add(const v1::FileChunk& chunk) {
  const auto it = expected_.find(chunk.path());
  if (it == expected_.end())
    return {grpc::INVALID_ARGUMENT, "chunk for " + echo(chunk.path()) + ", which the header does not list"};
  int64_t& have = received_[chunk.path()];
  if (chunk.offset() != have)
    return {grpc::INVALID_ARGUMENT, "chunk of " + echo(chunk.path()) + " at offset " + std::to_string(chunk.offset()) +
                                        ", expected " + std::to_string(have) + ": send each file's chunks in order"};
  if (chunk.data().size() > kChunkBytes)
    return {grpc::INVALID_ARGUMENT, "chunks carry at most 1 MiB; split " + echo(chunk.path())};
  total_ += static_cast<int64_t>(chunk.data().size());
  if (total_ > max_total_)
    return {grpc::RESOURCE_EXHAUSTED, "upload exceeds the limit of " + std::to_string(max_total_) + " bytes"};
  const fs::path target = fs::path(dir_) / chunk.path();
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec) return storage_error("file " + echo(chunk.path()), target.parent_path().string(), ec.value());
  errno = 0;
  std::ofstream out(target, have == 0 ? std::ios::binary | std::ios::trunc : std::ios::binary | std::ios::app);
  out.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
  out.flush();
  if (!out) return storage_error("file " + echo(chunk.path()), target.string(), errno ? errno : EIO);
  have += static_cast<int64_t>(chunk.data().size());
  return grpc::Status::OK;
}

grpc::Status FileReceiver::finish() {
  for (const auto& [path, sha] : expected_) {
    const fs::path target = fs::path(dir_) / path;
    if (!received_.count(path) || !fs::exists(target))
      return {grpc::INVALID_ARGUMENT, "the upload ended before " + echo(path) + " was sent"};
    const std::string got = sha256_file(target.string());
    if (got != sha)
      return {grpc::INVALID_ARGUMENT, "sha256 of " + echo(path) + " is " + got + ", the header said " + echo(sha) +
                                          ": the file was corrupted in transit or the header is wrong"};
  }
  return grpc::Status::OK;
}

}  // namespace qdm::service
