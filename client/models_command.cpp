// qdm models list|describe|upload|delete: models and artifacts on the service.
#include <fmt/format.h>

#include <filesystem>

#include "client/remote.h"
#include "qdm/v1/models.grpc.pb.h"
#include "service/file_transfer.h"

namespace qdm::cli {

void add_models_command(CLI::App& app) {
  auto* models = app.add_subcommand("models", "Models and artifacts on the service");
  models->require_subcommand(1);

  auto artifacts = std::make_shared<bool>(false);
  auto* list = models->add_subcommand("list", "Models (and artifacts with --artifacts)");
  auto remote_list = std::make_shared<RemoteArgs>();  // one per subcommand: CLI11 fills env defaults per option
  add_remote_options(list, *remote_list);
  list->add_flag("--artifacts", *artifacts, "Include quantized artifacts");
  list->callback([remote = remote_list, artifacts] {
    auto stub = v1::Models::NewStub(remote->channel());
    grpc::ClientContext ctx;
    remote->apply(ctx);
    v1::ListModelsRequest req;
    req.set_include_artifacts(*artifacts);
    v1::ListModelsResponse resp;
    check(stub->List(&ctx, req, &resp));
    fmt::print("{:<40} {:<9} {:>12} {:>11}  {}\n", "NAME", "KIND", "BYTES", "PARAMS", "SHA256");
    for (const auto& m : resp.models())
      fmt::print("{:<40} {:<9} {:>12} {:>11}  {}\n", m.name(), m.quantized() ? "artifact" : "model", m.bytes(),
                 m.parameters(), m.sha256().substr(0, 16));
  });

  auto name = std::make_shared<std::string>();
  auto* describe = models->add_subcommand("describe", "Config, size, and for artifacts the recipe and report");
  auto remote_describe = std::make_shared<RemoteArgs>();  // one per subcommand: CLI11 fills env defaults per option
  add_remote_options(describe, *remote_describe);
  describe->add_option("name", *name, "Model or artifact name")->required();
  describe->callback([remote = remote_describe, name] {
    auto stub = v1::Models::NewStub(remote->channel());
    grpc::ClientContext ctx;
    remote->apply(ctx);
    v1::DescribeModelRequest req;
    req.set_name(*name);
    v1::ModelInfo m;
    check(stub->Describe(&ctx, req, &m));
    fmt::print("name:       {}\nkind:       {}\nbytes:      {}\nparameters: {}\nsha256:     {}\nconfig:     {}\n",
               m.name(), m.quantized() ? "artifact" : "model", m.bytes(), m.parameters(), m.sha256(), m.config_json());
    if (m.quantized())
      fmt::print("recipe:     {}\nsource:     {}\nreport:     {}\n", m.recipe_json(), m.source_model(), m.report().json());
  });

  auto dir = std::make_shared<std::string>();
  auto* upload = models->add_subcommand("upload", "Upload a diffusers model folder");
  auto remote_upload = std::make_shared<RemoteArgs>();  // one per subcommand: CLI11 fills env defaults per option
  add_remote_options(upload, *remote_upload);
  upload->add_option("dir", *dir, "Folder with config.json and diffusion_pytorch_model.safetensors")->required()->check(CLI::ExistingDirectory);
  upload->add_option("--name", *name, "Name on the service (default: the folder's name)");
  upload->callback([remote = remote_upload, dir, name] {
    const std::string n = name->empty() ? std::filesystem::path(*dir).lexically_normal().filename().string() : *name;
    const auto files = service::model_folder_files(*dir);
    for (const auto& f : files)
      if (!std::filesystem::exists(std::filesystem::path(*dir) / f))
        throw CLI::ValidationError("dir", *dir + " has no " + f);
    auto stub = v1::Models::NewStub(remote->channel());
    grpc::ClientContext ctx;
    remote->apply(ctx);
    v1::ModelInfo info;
    auto writer = stub->Upload(&ctx, &info);
    v1::UploadChunk header;
    *header.mutable_header() = service::make_header(n, *dir, files);
    bool ok = writer->Write(header) && service::send_file_chunks(*dir, files, [&](const v1::FileChunk& c) {
      v1::UploadChunk m;
      *m.mutable_chunk() = c;
      return writer->Write(m);
    });
    (void)ok;  // a refused upload ends the stream early; Finish() says why
    writer->WritesDone();
    check(writer->Finish());
    fmt::print("uploaded {} ({} bytes, {} parameters, sha256 {})\n", info.name(), info.bytes(), info.parameters(),
               info.sha256());
  });

  auto* del = models->add_subcommand("delete", "Delete an uploaded model or an artifact");
  auto remote_del = std::make_shared<RemoteArgs>();  // one per subcommand: CLI11 fills env defaults per option
  add_remote_options(del, *remote_del);
  del->add_option("name", *name, "Model or artifact name")->required();
  del->callback([remote = remote_del, name] {
    auto stub = v1::Models::NewStub(remote->channel());
    grpc::ClientContext ctx;
    remote->apply(ctx);
    v1::DeleteModelRequest req;
    req.set_name(*name);
    v1::DeleteModelResponse resp;
    check(stub->Delete(&ctx, req, &resp));
    fmt::print("deleted {}\n", *name);
  });
}

}  // namespace qdm::cli
