// Secrets out of log lines: every message the service processes log passes through
// redact_secrets (logging.cpp installs it in the formatter), so a store URL, a libpq connection
// string or an authorization header is logged without the secret, wherever it is logged from.
#pragma once

#include <string>
#include <string_view>

namespace qdm::service {

// "scheme://user:password@host" -> "scheme://user:***@host"; "password=..." and
// "sslpassword=..." (URL query parameters and libpq keyword strings, any case, quoted values
// included) -> "password=***"; "Bearer <token>" -> "Bearer ***". Everything else is unchanged.
std::string redact_secrets(std::string_view text);

}  // namespace qdm::service
