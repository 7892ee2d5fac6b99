#include "service/scheduler_target.h"

#include <arpa/inet.h>

#include <stdexcept>
#include <vector>

namespace qdm::service {
namespace {

// "1.2.3.4:5" -> 4, "[::1]:5" -> 6, else 0.
int ip_family(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return 0;
  std::string host = address.substr(0, colon);
  unsigned char buf[16];
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    return inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), buf) == 1 ? 6 : 0;
  return inet_pton(AF_INET, host.c_str(), buf) == 1 ? 4 : 0;
}

}  // namespace

std::string scheduler_target(const std::string& addresses) {
  if (addresses.find(',') == std::string::npos) return addresses;
  std::vector<std::string> parts;
  for (size_t a = 0; a <= addresses.size();) {
    size_t b = addresses.find(',', a);
    if (b == std::string::npos) b = addresses.size();
    if (b > a) parts.push_back(addresses.substr(a, b - a));
    a = b + 1;
  }
  const int family = parts.empty() ? 0 : ip_family(parts.front());
  std::string target = family == 6 ? "ipv6:" : "ipv4:";
  for (size_t i = 0; i < parts.size(); ++i) {
    if (family == 0 || ip_family(parts[i]) != family)
      throw std::invalid_argument(
          "--scheduler: a list of scheduler replicas must be IP:port entries of one family; for host names give one "
          "name that resolves to every replica (e.g. dns:///qdm-scheduler-headless:50051)");
    target += (i ? "," : "") + parts[i];
  }
  return target;
}

}  // namespace qdm::service
