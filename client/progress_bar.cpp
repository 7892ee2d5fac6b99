#include "client/progress_bar.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace qdm::cli {

ProgressBar::ProgressBar(std::string label, bool lines_on_stdout)
    : label_(std::move(label)), bar_(isatty(fileno(stderr)) != 0), lines_(lines_on_stdout && isatty(fileno(stdout)) == 0),
      start_(std::chrono::steady_clock::now()), last_(start_ - std::chrono::seconds(1)), last_line_(start_) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::set_plain(bool bar, bool lines, std::chrono::milliseconds interval) {
  bar_ = bar;
  lines_ = lines;
  interval_ = interval;
}

void ProgressBar::update(double fraction, const std::string& detail, const std::string& stage) {
  if (finished_) return;
  fraction = std::clamp(fraction, 0.0, 1.0);
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double eta = fraction > 0 ? elapsed * (1 - fraction) / fraction : 0;
  if (lines_) {
    const bool new_stage = stage != stage_ || last_fraction_ < 0;
    if (new_stage || now - last_line_ >= interval_) {
      std::printf("%s: %3d%% after %.0f s%s%s\n", label_.c_str(), static_cast<int>(fraction * 100), elapsed,
                  detail.empty() ? "" : ", ", detail.c_str());
      std::fflush(stdout);
      stage_ = stage;
      last_line_ = now;
    }
    last_fraction_ = fraction;
  }
  if (!bar_ || (fraction < 1.0 && now - last_ < std::chrono::milliseconds(100))) return;
  last_ = now;
  const int width = 30, filled = static_cast<int>(fraction * width);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(width, '.');
  std::fprintf(stderr, "\r%s [%s] %3d%% %.0fs<%.0fs %s\033[K", label_.c_str(), bar.c_str(),
               static_cast<int>(fraction * 100), elapsed, eta, detail.c_str());
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  if (bar_) std::fprintf(stderr, "\n");
}

}  // namespace qdm::cli
