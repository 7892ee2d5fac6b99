// Reading the fields of a JSON config file with errors that name the file and the field.
#pragma once

#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>

namespace qdm {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class JsonFields {
 public:
  JsonFields(const nlohmann::json& j, std::string file) : j_(j), file_(std::move(file)) {}

  [[noreturn]] static void fail(const std::string& file, const std::string& field, const std::string& what) {
    throw ConfigError(file + ": field '" + field + "' " + what);
  }

  // Missing or null: `out` keeps its default.
  template <typename T>
  void read(const char* key, T& out) const {
    if (!j_.contains(key) || j_[key].is_null()) return;
    out = get<T>(key);
  }

  // Missing: default kept; null: reset.
  template <typename T>
  void read_optional(const char* key, std::optional<T>& out) const {
    if (!j_.contains(key)) return;
    if (j_[key].is_null()) {
      out.reset();
      return;
    }
    out = get<T>(key);
  }

 private:
  template <typename T>
  T get(const char* key) const {
    try {
      return j_[key].get<T>();
    } catch (const nlohmann::json::exception&) {
      fail(file_, key, "has the wrong type: " + j_[key].dump());
    }
  }

  const nlohmann::json& j_;
  std::string file_;
};

// A JSON file's contents; errors name `label` (a pipeline-relative name, never a server path).
inline nlohmann::json read_json_file(const std::string& path, const std::string& label) {
  std::ifstream in(path);
  if (!in) throw ConfigError(label + ": missing or unreadable");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception&) {
    throw ConfigError(label + ": not valid JSON");
  }
}

}  // namespace qdm
