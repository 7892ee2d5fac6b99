#!/usr/bin/env bash
# The GPU path on a real GPU, in one run of under 10 minutes: on a machine with an NVIDIA GPU and
# a CUDA build of PyTorch (whose bundled LibTorch `torch.utils.cmake_prefix_path` locates) but no
# gRPC, builds the engine, qdm_cuda_tests and the sampling bench (QDM_ENGINE_ONLY; header-only
# dependencies from the system or from var/gpu-deps, which `PREPARE=1` fills from this machine's
# Debian packages so the device's run can carry it), runs the CUDA GEMM tests, then W4A8 (integer
# kernels on the GPU) vs FP32 sampling with DEVICE=cuda, and writes bench/results/gpu_check.md
# (or $OUT/gpu_check.md when OUT is set, as on the device machine).
#
#   PREPARE=1 bash bench/gpu_check.sh      here: vendored headers + the W4A8 artifact to carry
#   bash bench/gpu_check.sh                on the GPU machine (var/gpu-deps and var/bench carried)
#   CHECK=1 bash bench/gpu_check.sh        here: the engine-only configuration built against
#                                          Debian's CPU LibTorch (compile check; no GPU run)
set -euo pipefail
cd "$(dirname "$0")/.."
deps=var/gpu-deps; artifact=var/bench/rtn_w4a8.safetensors
start=$(date +%s)

if [ "${PREPARE:-0}" = 1 ]; then
  rm -rf "$deps" && mkdir -p "$deps/include"
  for d in nlohmann CLI spdlog fmt; do cp -r "/usr/include/$d" "$deps/include/"; done
  cp -r /usr/src/googletest "$deps/googletest"
  [ -s "$artifact" ] || build/bin/qdm quantize --model models/fmnist-ddpm --recipe rtn --wbits 4 --abits 8 \
    --report-samples 0 --out "$artifact" >/dev/null
  du -sh "$deps" "$artifact"
  exit 0
fi

if [ "${CHECK:-0}" = 1 ]; then
  prefix=""
  build=build-gpu-check
else
  python=$(command -v python3)
  prefix=$("$python" -c "import torch; print(torch.utils.cmake_prefix_path)")
  "$python" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible to PyTorch'"
  build=var/build-gpu
fi
jobs=$(nproc)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DQDM_ENGINE_ONLY=ON -DQDM_DEPS_DIR="$PWD/$deps" \
  ${prefix:+-DCMAKE_PREFIX_PATH="$prefix"} ${CUDA_ARCH:+-DCMAKE_CUDA_ARCHITECTURES=$CUDA_ARCH} >"$build.configure.log" 2>&1 \
  || { tail -30 "$build.configure.log"; exit 1; }
cmake --build "$build" -j "$jobs" --target qdm_sampling_bench >"$build.build.log" 2>&1 || { tail -40 "$build.build.log"; exit 1; }
if cmake --build "$build" -j "$jobs" --target qdm_cuda_tests >>"$build.build.log" 2>&1; then have_tests=1; else have_tests=0; fi
echo "built in $(( $(date +%s) - start )) s (cuda tests: $have_tests)"
[ "${CHECK:-0}" = 1 ] && exit 0

dest=${OUT:-bench/results}; mkdir -p "$dest"
report="$dest/gpu_check.md"
{
  echo "# GPU check: the CUDA integer kernels and GPU sampling on a real GPU"
  echo
  echo "\`bash bench/gpu_check.sh\`, $(date -u +%Y-%m-%d): $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1),"
  echo "PyTorch $("$python" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)')."
  echo
  echo "## qdm_cuda_tests (the dp4a GEMM against the scalar reference, 4- and 8-bit)"
  echo
  echo '```'
  if [ $have_tests = 1 ]; then "$build/bin/qdm_cuda_tests" 2>&1 | tail -15; else echo "not built (see $build.build.log)"; fi
  echo '```'
  echo
  echo "## Sampling, DEVICE=cuda (100 DDIM steps): FP32 (LibTorch CUDA) vs W4A8 (TensorIntLayer + dp4a GEMM)"
  echo
  "$build/bin/qdm_sampling_bench" --model models/fmnist-ddpm --device cuda --steps 100 --batches 1,64 2>/dev/null | grep '^|'
  "$build/bin/qdm_sampling_bench" --artifact "$artifact" --kernels int --device cuda --steps 100 --batches 1,64 2>/dev/null | grep '^| [^m-]'
  echo
  echo "Total run: $(( $(date +%s) - start )) s."
} > "$report" 2>&1
cat "$report"
