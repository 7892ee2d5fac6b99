// Cold start of a sampling node: process start to the first image. Each run starts the node
// binary (qdm-sampler or qdm-worker) with an empty cache directory against a running
// scheduler, calls its Sampling port at once (wait_for_ready: the call waits for the port) for
// one image of an artifact, and stops the node. The time covers the process start, registration,
// fetching the artifact from the scheduler, loading it and sampling. One JSON line per run.
//
//   qdm_node_start --node build/bin/qdm-sampler --scheduler 127.0.0.1:50051 --artifact NAME --port 50060
#include <CLI/CLI.hpp>
#include <grpcpp/create_channel.h>
#include <grpcpp/support/channel_arguments.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "qdm/v1/sampling.grpc.pb.h"

int main(int argc, char** argv) {
  CLI::App app{"qdm_node_start: a sampling node's process start to its first image"};
  std::string node, scheduler, artifact, model, work = "var/bench/node_start", log;
  int port = 50060, runs = 5, steps = 0;
  app.add_option("--node", node, "qdm-sampler or qdm-worker binary")->required();
  app.add_option("--scheduler", scheduler, "Scheduler address")->required();
  app.add_option("--artifact", artifact, "Artifact name on the scheduler");
  app.add_option("--model", model, "Model name on the scheduler (instead of --artifact)");
  app.add_option("--port", port)->capture_default_str();
  app.add_option("--runs", runs)->capture_default_str();
  app.add_option("--steps", steps, "Sampler steps (0: the artifact's default)")->capture_default_str();
  app.add_option("--work", work, "Cache directories (emptied before each run)")->capture_default_str();
  app.add_option("--log", log, "Append the node's output here (default: discarded)");
  CLI11_PARSE(app, argc, argv);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  for (int run = 0; run < runs; ++run) {
    std::filesystem::remove_all(work);
    std::filesystem::create_directories(work);
    const auto start = std::chrono::steady_clock::now();
    const pid_t pid = fork();
    if (pid == 0) {
      const std::string out = log.empty() ? "/dev/null" : log;
      if (!freopen(out.c_str(), "a", stdout) || !freopen(out.c_str(), "a", stderr)) _exit(127);
      std::vector<std::string> args = {node, "--scheduler", scheduler, "--listen", address, "--advertise", address,
                                       "--id", "cold-start", "--metrics", "127.0.0.1:0", "--cache-dir", work};
      if (node.find("qdm-worker") != std::string::npos) args.insert(args.end(), {"--job-slots", "0", "--device", "cpu"});
      std::vector<char*> cargs;
      for (auto& a : args) cargs.push_back(a.data());
      cargs.push_back(nullptr);
      execv(node.c_str(), cargs.data());
      _exit(127);
    }
    // The first connection attempt comes before the node listens; gRPC's default reconnect
    // backoff (1 s, growing) would be measured instead of the node, so retry every 10 ms.
    grpc::ChannelArguments channel_args;
    channel_args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 10);
    channel_args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 10);
    channel_args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 10);
    auto stub = qdm::v1::Sampling::NewStub(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), channel_args));
    qdm::v1::SampleRequest req;
    if (!artifact.empty()) req.set_artifact(artifact);
    else req.set_model(model);
    req.set_num_images(1);
    req.set_seed(static_cast<uint64_t>(run));
    if (steps > 0) req.mutable_sampler()->set_steps(steps);
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    qdm::v1::SampleResponse resp;
    const grpc::Status status = stub->Sample(&ctx, req, &resp);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    kill(pid, SIGTERM);
    int wstatus = 0;
    waitpid(pid, &wstatus, 0);
    if (!status.ok() || resp.images_size() != 1) {
      std::fprintf(stderr, "run %d: %s (%d images)\n", run, status.error_message().c_str(), resp.images_size());
      return 1;
    }
    std::printf("{\"node\": \"%s\", \"run\": %d, \"first_image_s\": %.4f, \"compute_s\": %.4f}\n",
                std::filesystem::path(node).filename().c_str(), run, seconds, resp.compute_seconds());
    std::fflush(stdout);
  }
  return 0;
}
