#include "service/rpc_interceptor.h"

#include <grpcpp/support/server_interceptor.h>

#include <chrono>
#include <cstring>

#include "service/status_message.h"

namespace qdm::service {
namespace {

using grpc::experimental::InterceptionHookPoints;

class RpcInterceptor : public grpc::experimental::Interceptor {
 public:
  RpcInterceptor(RpcMetrics& metrics, const char* method) : metrics_(metrics), start_(std::chrono::steady_clock::now()) {
    // "/qdm.v1.QuantizeJobs/Submit" -> "QuantizeJobs/Submit"; other services (health,
    // reflection) are not counted.
    static constexpr char kPrefix[] = "/qdm.v1.";
    if (method && std::strncmp(method, kPrefix, sizeof kPrefix - 1) == 0) label_ = method + sizeof kPrefix - 1;
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      const grpc::Status safe = safe_status(status);
      if (safe.error_message() != status.error_message()) methods->ModifySendStatus(safe);
      if (!label_.empty()) metrics_.record(label_, start_, safe);
    }
    methods->Proceed();
  }

 private:
  RpcMetrics& metrics_;
  std::chrono::steady_clock::time_point start_;
  std::string label_;
};

class RpcInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcInterceptorFactory(RpcMetrics& metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    return new RpcInterceptor(metrics_, info->method());
  }

 private:
  RpcMetrics& metrics_;
};

}  // namespace

void add_rpc_interceptor(grpc::ServerBuilder& builder, RpcMetrics& metrics) {
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(std::make_unique<RpcInterceptorFactory>(metrics));
  builder.experimental().SetInterceptorCreators(std::move(creators));
}

}  // namespace qdm::service
