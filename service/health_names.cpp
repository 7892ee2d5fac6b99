#include "service/health_names.h"

namespace qdm::service {

void set_serving(const std::vector<grpc::HealthCheckServiceInterface*>& health, const std::vector<std::string>& names,
                 bool serving) {
  for (auto* h : health) {
    if (!h) continue;
    h->SetServingStatus(serving);
    for (const auto& n : names) h->SetServingStatus(n, serving);
  }
}

}  // namespace qdm::service
