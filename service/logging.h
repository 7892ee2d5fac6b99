// spdlog set-up for the service processes: text by default, one JSON object per line with
// --log-json (message escaped), level from --log-level; every message with its secrets
// redacted (redact.h).
#pragma once

#include <string>

namespace qdm::service {

void setup_logging(bool json, const std::string& level, const std::string& component);

}  // namespace qdm::service
