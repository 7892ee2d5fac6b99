// A one-line progress bar on stderr when it is a terminal; silent otherwise.
#pragma once

#include <chrono>
#include <string>

namespace qdm::cli {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  ~ProgressBar();
  // fraction in [0, 1]; detail is printed after the bar.
  void update(double fraction, const std::string& detail = "");
  void finish();

 private:
  std::string label_;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace qdm::cli
