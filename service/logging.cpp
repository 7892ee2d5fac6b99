#include "service/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include "service/redact.h"

namespace qdm::service {
namespace {

// %*: the message as a JSON string body (quotes, backslashes and control characters escaped),
// secrets redacted.
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    static const char* hex = "0123456789abcdef";
    for (char c : redact_secrets(std::string_view(msg.payload.data(), msg.payload.size()))) {
      if (c == '"' || c == '\\') {
        dest.push_back('\\');
        dest.push_back(c);
      } else if (static_cast<unsigned char>(c) < 0x20) {
        const char esc[] = {'\\', 'u', '0', '0', hex[(c >> 4) & 0xf], hex[c & 0xf]};
        dest.append(esc, esc + 6);
      } else {
        dest.push_back(c);
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonMessageFlag>(); }
};

// %~: the message, secrets redacted (the text format's %v).
class RedactedMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    const std::string text = redact_secrets(std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<RedactedMessageFlag>(); }
};

}  // namespace

void setup_logging(bool json, const std::string& level, const std::string& component) {
  spdlog::set_level(spdlog::level::from_str(level));
  if (json) {
    auto f = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    f->add_flag<JsonMessageFlag>('*').set_pattern(
        "{\"time\":\"%Y-%m-%dT%H:%M:%S.%fZ\",\"level\":\"%l\",\"component\":\"" + component + "\",\"msg\":\"%*\"}");
    spdlog::set_formatter(std::move(f));
  } else {
    auto f = std::make_unique<spdlog::pattern_formatter>();
    f->add_flag<RedactedMessageFlag>('~').set_pattern("[%Y-%m-%d %H:%M:%S.%e] [" + component + "] [%^%l%$] %~");
    spdlog::set_formatter(std::move(f));
  }
}

}  // namespace qdm::service
