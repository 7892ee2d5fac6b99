#include "worker/model_fetcher.h"

#include <grpcpp/client_context.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>

#include "service/auth.h"
#include "service/file_transfer.h"

namespace fs = std::filesystem;

namespace qdm::worker {
namespace {

std::string manifest(const v1::UploadChunk::Header& h) {
  std::string s;
  for (const auto& [path, sha] : std::map<std::string, std::string>(h.files().begin(), h.files().end()))
    s += path + " " + sha + "\n";
  return s;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

ModelFetcher::ModelFetcher(std::string cache_dir, v1::WorkerGateway::StubInterface& scheduler, std::string token)
    : cache_(std::move(cache_dir)), scheduler_(scheduler), token_(std::move(token)) {
  fs::create_directories(cache_);
}

std::string ModelFetcher::fetch(const std::string& name, bool artifact, std::string* version) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!service::valid_name(name)) throw FetchError(grpc::INVALID_ARGUMENT, "'" + name + "' is not a model name");
  const fs::path dir = fs::path(cache_) / (artifact ? "artifacts" : "models") / name;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
  service::add_bearer(ctx, token_);
  v1::FetchModelRequest req;
  req.set_name(name);
  req.set_artifact(artifact);
  auto reader = scheduler_.FetchModel(&ctx, req);
  v1::UploadChunk msg;
  if (!reader->Read(&msg) || msg.part_case() != v1::UploadChunk::kHeader) {
    const grpc::Status s = reader->Finish();
    throw FetchError(s.ok() ? grpc::INTERNAL : s.error_code(),
                     s.ok() ? "the scheduler sent no header for '" + name + "'" : s.error_message());
  }
  const std::string want = manifest(msg.header());
  if (version) *version = want;
  if (artifact && msg.header().files_size() != 1)
    throw FetchError(grpc::INTERNAL, "the scheduler sent " + std::to_string(msg.header().files_size()) +
                                         " files for artifact '" + name + "'");
  const fs::path local_path = artifact ? dir / msg.header().files().begin()->first : dir;
  auto local = [&] { return local_path.string(); };
  if (fs::exists(dir / ".manifest") && read_text(dir / ".manifest") == want) {
    ctx.TryCancel();
    reader->Finish();
    return local();
  }
  const fs::path tmp = fs::path(cache_) / (".incoming-" + name);
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  std::map<std::string, std::string> files(msg.header().files().begin(), msg.header().files().end());
  for (const auto& [path, sha] : files)
    if (!service::safe_relative_path(path)) throw FetchError(grpc::INTERNAL, "unsafe path from the scheduler: " + path);
  service::FileReceiver receiver(tmp.string(), files, int64_t(64) << 30);
  grpc::Status status;
  while (reader->Read(&msg)) {
    if (!status.ok()) continue;
    if (msg.part_case() != v1::UploadChunk::kChunk) status = {grpc::INTERNAL, "a second header"};
    else status = receiver.add(msg.chunk());
  }
  const grpc::Status rpc = reader->Finish();
  if (status.ok()) status = rpc;
  if (status.ok()) status = receiver.finish();
  if (!status.ok()) {
    fs::remove_all(tmp);
    throw FetchError(status.error_code(), "fetching '" + name + "' failed: " + status.error_message());
  }
  std::ofstream(tmp / ".manifest") << want;
  fs::remove_all(dir);
  fs::create_directories(dir.parent_path());
  fs::rename(tmp, dir);
  spdlog::info("fetched {} '{}' ({} bytes)", artifact ? "artifact" : "model", name, receiver.bytes());
  return local();
}

}  // namespace qdm::worker
