// One head of quantized attention timed on its two paths (engine/kernels/attention.h): the exact
// fp32 GEMMs over centred codes against the integer GEMMs, over a grid of head shapes (d 32 and
// 64; len 16..1024 queries; len_kv 8..1024 keys, 77 being SD's text), one thread, the best ISA;
// and which path attention_exact_pays picks. The rule's figures come from this table.
//
//   build/bin/qdm_attention_bench > bench/results/attention_heads.md
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "engine/kernels/attention.h"

int main() {
  using namespace qdm;
  std::mt19937 rng(5);
  std::normal_distribution<float> g(0.0f, 2.0f);
  const AttentionTables t{{12.0f / 255, 128, 255}, {12.0f / 255, 128, 255}, {8.0f / 255, 128, 255}, {0.5f / 255, 0, 255}};
  const QGemmIsa isa = best_isa();
  std::printf("# Quantized attention, one head: exact fp32 GEMMs against integer GEMMs\n\n");
  std::printf("`build/bin/qdm_attention_bench`: one thread, integer path on %s, microseconds per head (the mean over\n"
              "repetitions worth about 2M multiply-adds). Both paths give the same bits; `picked` is the path\n"
              "attention_exact_pays chooses.\n\n", isa_name(isa));
  std::printf("| d | len | len_kv | exact fp32 us | integer us | exact / integer | picked |\n|---:|---:|---:|---:|---:|---:|---|\n");
  for (int d : {32, 64})
    for (int len : {16, 64, 256, 1024})
      for (int len_kv : {8, 16, 64, 77, 256, 1024}) {
        std::vector<float> q(static_cast<size_t>(len) * d), k(static_cast<size_t>(len_kv) * d), v(k.size()), out(q.size());
        for (auto* x : {&q, &k, &v})
          for (float& e : *x) e = g(rng);
        auto time = [&](auto f) {
          const int reps = std::max(3, static_cast<int>(2e6 / (static_cast<double>(len) * len_kv * d + 20000)));
          for (int i = 0; i < 2; ++i) f();
          const auto t0 = std::chrono::steady_clock::now();
          for (int i = 0; i < reps; ++i) f();
          return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / reps;
        };
        bool exact = true;
        const double te = time([&] { exact = attention_head_exact(isa, q.data(), k.data(), v.data(), len, len_kv, d, t, 0.17f, out.data(), d); });
        const double ti = time([&] { attention_head_int(isa, q.data(), k.data(), v.data(), len, len_kv, d, t, 0.17f, out.data(), d); });
        std::printf("| %d | %d | %d | %.1f%s | %.1f | %.2fx | %s |\n", d, len, len_kv, te, exact ? "" : " (refused)", ti, te / ti,
                    attention_exact_pays(len, len_kv, d) ? "exact" : "integer");
      }
  return 0;
}
