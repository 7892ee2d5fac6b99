#include "service/redact.h"

#include <cctype>

namespace qdm::service {
namespace {

bool starts_with_nocase(std::string_view s, size_t at, std::string_view word) {
  if (s.size() - at < word.size()) return false;
  for (size_t i = 0; i < word.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[at + i])) != word[i]) return false;
  return true;
}

bool word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Where a value that starts at `at` ends: a quoted libpq value to its closing quote, else at
// whitespace, '&' (URL query), or a quote/bracket that closes the enclosing text.
size_t value_end(std::string_view s, size_t at) {
  if (at < s.size() && s[at] == '\'') {
    for (size_t i = at + 1; i < s.size(); ++i) {
      if (s[i] == '\\') ++i;
      else if (s[i] == '\'') return i + 1;
    }
    return s.size();
  }
  size_t i = at;
  while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i])) && s[i] != '&' && s[i] != '"' && s[i] != '\'' &&
         s[i] != ')' && s[i] != ',')
    ++i;
  return i;
}

}  // namespace

std::string redact_secrets(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    // user:password@ after "://"
    if (s.compare(i, 3, "://") == 0) {
      const size_t auth = i + 3;
      size_t end = auth;
      while (end < s.size() && !std::isspace(static_cast<unsigned char>(s[end])) && s[end] != '/' && s[end] != '@' &&
             s[end] != '?' && s[end] != '#')
        ++end;
      if (end < s.size() && s[end] == '@') {
        const size_t colon = s.find(':', auth);
        if (colon != std::string_view::npos && colon < end) {
          out.append(s.substr(i, colon + 1 - i)).append("***@");
          i = end + 1;
          continue;
        }
      }
      out.append("://");
      i = auth;
      continue;
    }
    // password= / sslpassword= as a whole word
    if ((i == 0 || !word_char(s[i - 1])) && (starts_with_nocase(s, i, "password") || starts_with_nocase(s, i, "sslpassword"))) {
      const size_t key = starts_with_nocase(s, i, "password") ? 8 : 11;
      size_t eq = i + key;
      while (eq < s.size() && s[eq] == ' ') ++eq;
      if (eq < s.size() && s[eq] == '=') {
        size_t v = eq + 1;
        while (v < s.size() && s[v] == ' ') ++v;
        out.append(s.substr(i, v - i)).append("***");
        i = value_end(s, v);
        continue;
      }
    }
    // Bearer <token>
    if ((i == 0 || !word_char(s[i - 1])) && starts_with_nocase(s, i, "bearer ")) {
      size_t v = i + 7;
      while (v < s.size() && s[v] == ' ') ++v;
      if (v < s.size() && value_end(s, v) > v) {
        out.append(s.substr(i, v - i)).append("***");
        i = value_end(s, v);
        continue;
      }
    }
    out.push_back(s[i++]);
  }
  return out;
}

}  // namespace qdm::service
