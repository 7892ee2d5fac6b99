// Progress for long calls: a one-line bar on stderr when stderr is a terminal. Commands whose
// stdout is for people (jobs watch, generate) also print plain lines on stdout when it is not a
// terminal (a log or a pipe), when the stage changes and at most every 10 seconds otherwise, so
// `cmd > log` shows what is happening; commands that print data on stdout (eval's JSON) do not.
#pragma once

#include <chrono>
#include <string>

namespace qdm::cli {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label, bool lines_on_stdout = false);
  ~ProgressBar();
  // fraction in [0, 1]; detail is printed after the bar; a new `stage` prints a plain line at once.
  void update(double fraction, const std::string& detail = "", const std::string& stage = "");
  void finish();

  // For tests: force the plain-line mode and its interval.
  void set_plain(bool bar, bool lines, std::chrono::milliseconds interval);

 private:
  std::string label_;
  bool bar_;    // stderr is a terminal
  bool lines_;  // stdout is not a terminal
  bool finished_ = false;
  std::chrono::milliseconds interval_{10000};
  std::string stage_;
  double last_fraction_ = -1;
  std::chrono::steady_clock::time_point start_, last_, last_line_;
};

}  // namespace qdm::cli
