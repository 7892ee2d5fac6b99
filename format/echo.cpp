#include "format/echo.h"

namespace qdm {

std::string echo(const std::string& input, size_t max) {
  std::string out = "'";
  for (size_t i = 0; i < input.size() && i < max; ++i) {
    const unsigned char c = static_cast<unsigned char>(input[i]);
    out += (c < 0x20 || c == 0x7f) ? '?' : static_cast<char>(c);
  }
  out += "'";
  if (input.size() > max) out += " (cut at " + std::to_string(max) + " of " + std::to_string(input.size()) + " characters)";
  return out;
}

}  // namespace qdm
