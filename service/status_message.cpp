#include "service/status_message.h"

#include <cctype>

namespace qdm::service {
namespace {

bool path_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' || c == '+' || c == '~'; }

// An absolute path starts at `i`: '/' after the start, a space, a quote, '(', '=' or ':' (but not
// "://"), then at least two segments ("/a/b"), so "1/2", "images/s" and URLs stay.
size_t path_length(std::string_view s, size_t i) {
  if (s[i] != '/') return 0;
  if (i > 0) {
    const char before = s[i - 1];
    const bool boundary = std::isspace(static_cast<unsigned char>(before)) || before == '\'' || before == '"' ||
                          before == '(' || before == '=' || before == '[' || before == ',' ||
                          (before == ':' && !(i + 1 < s.size() && s[i + 1] == '/'));
    if (!boundary) return 0;
  }
  size_t j = i, segments = 0;
  while (j < s.size() && s[j] == '/') {
    size_t k = j + 1;
    while (k < s.size() && path_char(s[k])) ++k;
    if (k == j + 1) break;  // "//" or a trailing '/'
    ++segments;
    j = k;
  }
  return segments >= 2 ? j - i : 0;
}

}  // namespace

std::string safe_status_message(std::string_view s) {
  std::string out;
  out.reserve(std::min(s.size(), kMaxStatusMessage));
  for (size_t i = 0; i < s.size();) {
    if (const size_t n = path_length(s, i)) {
      out += "<server path>";
      i += n;
      continue;
    }
    out.push_back(s[i++]);
  }
  if (out.size() > kMaxStatusMessage) {
    const std::string cut = " ... (message cut at " + std::to_string(kMaxStatusMessage) + " bytes)";
    size_t keep = kMaxStatusMessage - cut.size();
    while (keep > 0 && (static_cast<unsigned char>(out[keep]) & 0xC0) == 0x80) --keep;  // not inside a UTF-8 character
    out = out.substr(0, keep) + cut;
  }
  return out;
}

grpc::Status safe_status(const grpc::Status& status) {
  if (status.ok()) return status;
  std::string message = safe_status_message(status.error_message());
  if (message == status.error_message()) return status;
  return {status.error_code(), message, status.error_details()};
}

}  // namespace qdm::service
