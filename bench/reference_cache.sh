#!/usr/bin/env bash
# What caching the quality report's fp32 images saves: the same rtn W4A8 quantization of the
# shipped model twice, back to back, with one --reference-cache; the second reads the fp32
# images instead of sampling them. Wall time of the whole run and of the quality report stage
# (from the log's stage timestamps), and whether the reports agree.
#   bash bench/reference_cache.sh     -> bench/results/reference_cache.md
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
args=(--model models/fmnist-ddpm --recipe rtn --wbits 4 --abits 8 --steps 100 --calib-samples 8 --report-samples 64
      --reference-cache "$tmp/refs")
for run in 1 2; do
  /usr/bin/time -f "%e" -o "$tmp/wall$run" build/bin/qdm quantize "${args[@]}" --out "$tmp/a$run.safetensors" > "$tmp/log$run" 2>&1
done
python3 - "$tmp" <<'PY' > bench/results/reference_cache.md
import datetime, re, sys
tmp = sys.argv[1]
def stamps(run):
    t = {}
    for line in open(f"{tmp}/log{run}"):
        m = re.match(r"\[(\S+ \S+)\] \[info\] (stage: quality report|report: (.*))", line)
        if m:
            t["report" if m.group(3) else "stage"] = (datetime.datetime.fromisoformat(m.group(1)), m.group(3))
    return (t["report"][0] - t["stage"][0]).total_seconds(), t["report"][1]
(r1, rep1), (r2, rep2) = stamps(1), stamps(2)
w1, w2 = (float(open(f"{tmp}/wall{i}").read()) for i in (1, 2))
print("# Quality report with cached fp32 reference images\n")
print(f"`bash bench/reference_cache.sh`, {datetime.date.today()}: rtn W4A8 of models/fmnist-ddpm, 100 DDIM steps, 64 report images, twice back to back.\n")
print("| run | fp32 images | quality report s | whole run s |\n|---|---|---:|---:|")
print(f"| 1 | sampled | {r1:.1f} | {w1:.1f} |\n| 2 | from the cache | {r2:.1f} | {w2:.1f} |\n")
print(f"Report time ratio {r2 / r1:.2f}, whole run {w2 / w1:.2f}; reports identical: {rep1 == rep2}.")
PY
cat bench/results/reference_cache.md
