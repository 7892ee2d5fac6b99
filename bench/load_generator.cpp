// qdm_load_generator: N concurrent gRPC clients sending Sample (or QuantizeJobs.Submit)
// requests to a scheduler on loopback, bounded by request count and time. Prints one markdown
// table row per client count: requests/s, images/s and p50/p95/p99 latency of successful calls,
// and the error count. With several servers (scheduler replicas) client c talks to server
// c mod k.
//
//   qdm_load_generator --server 127.0.0.1:50051 --model fmnist-ddpm --clients 1,4,16 \
//       --requests 32 --seconds 120 --num 1 --steps 20
//   qdm_load_generator --server 127.0.0.1:50051,127.0.0.1:50053 --rpc submit --model fmnist-ddpm ...
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "qdm/v1/jobs.grpc.pb.h"
#include "qdm/v1/sampling.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"qdm_load_generator: concurrent Sample calls against a qdm scheduler"};
  std::vector<std::string> servers = {"127.0.0.1:50051"};
  std::string model, artifact, label, rpc = "sample";
  std::vector<int> clients = {1, 4, 16};
  int requests = 32, num = 1, steps = 20;
  double seconds = 120;
  app.add_option("--server", servers, "Scheduler address, or replicas' addresses (comma-separated)")->delimiter(',');
  app.add_option("--rpc", rpc, "sample (Sampling.Sample) or submit (QuantizeJobs.Submit of an rtn job)")->capture_default_str();
  app.add_option("--model", model, "fp32 model name");
  app.add_option("--artifact", artifact, "artifact name");
  app.add_option("--clients", clients, "Client counts to run, one after another")->delimiter(',')->capture_default_str();
  app.add_option("--requests", requests, "Requests per client (upper bound)")->capture_default_str();
  app.add_option("--seconds", seconds, "Time bound per client count")->capture_default_str();
  app.add_option("--num", num, "Images per request")->capture_default_str();
  app.add_option("--steps", steps, "Sampler steps")->capture_default_str();
  app.add_option("--label", label, "First column of the table (e.g. batching on)");
  CLI11_PARSE(app, argc, argv);
  if (model.empty() == artifact.empty()) {
    std::fprintf(stderr, "give exactly one of --model or --artifact\n");
    return 2;
  }
  if (rpc != "sample" && rpc != "submit") {
    std::fprintf(stderr, "--rpc must be sample or submit\n");
    return 2;
  }
  std::vector<std::unique_ptr<qdm::v1::Sampling::Stub>> sampling;
  std::vector<std::unique_ptr<qdm::v1::QuantizeJobs::Stub>> jobs;
  for (const auto& server : servers) {
    auto channel = grpc::CreateChannel(server, grpc::InsecureChannelCredentials());
    sampling.push_back(qdm::v1::Sampling::NewStub(channel));
    jobs.push_back(qdm::v1::QuantizeJobs::NewStub(channel));
  }
  for (int n : clients) {
    std::mutex mu;
    std::vector<double> latencies;
    std::atomic<int> errors{0}, seed{0};
    const auto start = Clock::now();
    const auto until = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    std::vector<std::thread> threads;
    for (int c = 0; c < n; ++c) {
      threads.emplace_back([&, c] {
        const size_t k = static_cast<size_t>(c) % servers.size();
        for (int r = 0; r < requests && Clock::now() < until; ++r) {
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
          const auto t0 = Clock::now();
          grpc::Status s;
          if (rpc == "sample") {
            qdm::v1::SampleRequest req;
            if (!model.empty()) req.set_model(model);
            else req.set_artifact(artifact);
            req.set_num_images(num);
            req.set_seed(static_cast<uint64_t>(seed.fetch_add(num)));
            req.mutable_sampler()->set_steps(steps);
            qdm::v1::SampleResponse resp;
            s = sampling[k]->Sample(&ctx, req, &resp);
          } else {
            qdm::v1::SubmitJobRequest req;
            req.set_model(model);
            req.mutable_options()->set_recipe("rtn");
            qdm::v1::Job job;
            s = jobs[k]->Submit(&ctx, req, &job);
          }
          const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
          if (!s.ok()) {
            ++errors;
            continue;
          }
          std::lock_guard<std::mutex> lock(mu);
          latencies.push_back(dt);
        }
      });
    }
    for (auto& t : threads) t.join();
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();
    const double ok = static_cast<double>(latencies.size());
    std::printf("| %s | %d | %d | %.2f | %.2f | %.3f | %.3f | %.3f | %d |\n", label.c_str(), n,
                static_cast<int>(ok), ok / wall, ok * num / wall, percentile(latencies, 0.50),
                percentile(latencies, 0.95), percentile(latencies, 0.99), errors.load());
    std::fflush(stdout);
  }
  return 0;
}
