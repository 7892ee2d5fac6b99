// What the paper's BitOPs leave out: the time qdm's own kernels take. Per searched layer and
// weight bit width, the milliseconds of its ops in the execution plan at batch 1 (activation
// codes are u8 at every activation width, so those do not change the time), plus the time of
// everything else; measured once per machine, model and bank and cached as JSON.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "engine/quant/tmpq/quantizer_bank.h"

namespace qdm::tmpq {

struct LatencyTable {
  std::vector<std::map<int, double>> layer_ms;  // per searched layer: bits -> ms per image and call
  double rest_ms = 0;                           // norms, attention cores, kept layers, copies
  std::string machine;                          // CPU and kernel path it was measured on
  // ms per image of a candidate's whole trajectory (its steps x one UNet call).
  double ms(const Candidate& c) const;
};

// Measured through the plan on `q` (assembling uniform candidates from `bank`), or read from
// cache_dir (when set) if measured there before for the same machine, model and layers.
LatencyTable measure_latency(const QuantizerBank& bank, QuantizedUNet& q, const std::string& model_sha256,
                             const std::string& cache_dir);

}  // namespace qdm::tmpq
