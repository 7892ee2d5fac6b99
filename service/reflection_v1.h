// grpc.reflection.v1.ServerReflection for this process's services, answered from the
// generated descriptor pool (the file of a symbol with its dependencies, the service list,
// extensions). Debian's gRPC (1.51) serves only v1alpha through its plugin; newer clients
// (grpcurl, Postman, grpcui) ask for v1 first.
#pragma once

#include <string>
#include <vector>

#include "grpc/reflection/v1/reflection.grpc.pb.h"

namespace qdm::service {

class ReflectionV1 final : public grpc::reflection::v1::ServerReflection::Service {
 public:
  // `services`: the full names listed by list_services (the server's registered services).
  explicit ReflectionV1(std::vector<std::string> services);

  grpc::Status ServerReflectionInfo(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<grpc::reflection::v1::ServerReflectionResponse,
                               grpc::reflection::v1::ServerReflectionRequest>* stream) override;

 private:
  std::vector<std::string> services_;
};

}  // namespace qdm::service
