// What one image's UNet call costs a quantized model, counted as TMPQ-DM counts it: every conv
// and linear layer's multiply-adds times its weight bits times its input bits (32 for fp32
// weights or inputs), attention's Q K^T and P V times their operands' bits (32 x 32 when the
// attention core is not quantized). The temporal information block costs nothing when its
// features are cached (it never runs). Multiply-adds come from the layers' last call; one call
// on zeros is made first when none has run.
#pragma once

#include <cstdint>

namespace qdm {

class QuantizedUNet;

struct CallCost {
  double macs = 0;    // multiply-adds (conv, linear, attention matmuls)
  double bitops = 0;  // the same weighted by operand bits
};

CallCost call_cost(QuantizedUNet& q);

}  // namespace qdm
