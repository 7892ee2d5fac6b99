// Where a worker reaches the scheduler: one address, a gRPC target URI (dns:///name:port for a
// headless Service resolving to every replica), or a comma-separated list of IP:port replicas,
// which becomes an ipv4:/ipv6: target: the channel fails over to the next replica when the one
// it uses goes away (its leases live in the shared store, not in the replica).
#pragma once

#include <string>

namespace qdm::service {

// Throws std::invalid_argument saying what to write instead (a list of host names).
std::string scheduler_target(const std::string& addresses);

}  // namespace qdm::service
