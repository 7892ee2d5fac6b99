// grpc.health.v1 answers for the whole server ("") and for each of its services by full name
// (qdm.v1.QuantizeJobs, ...), so a probe or a gateway can ask about the API it uses.
#pragma once

#include <grpcpp/health_check_service_interface.h>

#include <string>
#include <vector>

namespace qdm::service {

// Sets every service of `names` and the server as a whole to `serving` on each of `health`
// (the main port's and, where there is one, the plaintext probe port's).
void set_serving(const std::vector<grpc::HealthCheckServiceInterface*>& health, const std::vector<std::string>& names,
                 bool serving);

}  // namespace qdm::service
