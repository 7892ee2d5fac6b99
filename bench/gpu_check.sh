#!/usr/bin/env bash
# The GPU path on a real GPU, made to succeed on its first try: on a lent machine with an NVIDIA
# GPU, nvcc and a CUDA build of PyTorch (whose LibTorch `torch.utils.cmake_prefix_path` locates)
# but no gRPC and perhaps no -dev packages, it builds the engine-only configuration
# (QDM_ENGINE_ONLY) against that LibTorch, runs the CUDA kernel tests first, then W4A8 (integer
# kernels on the GPU) vs FP32 sampling, and writes one table. Every step has its own log in the
# output folder and a row in the table; a failed step prints one line and the script goes on
# to the next step that does not depend on it.
#
#   PREPARE=1 bash bench/gpu_check.sh   here: the carried dependencies (var/gpu-deps: header-only
#                                       libraries and googletest's sources) and the W4A8 artifact
#                                       (var/bench), then the device call to make
#   bash bench/gpu_check.sh             on the GPU machine (var/gpu-deps and var/bench carried):
#                                       writes $OUT/gpu_check.md (or OUT_DIR, else bench/results)
#   CHECK=1 bash bench/gpu_check.sh     here: every step that needs no GPU, against Debian's CPU
#                                       LibTorch, with every carried dependency forced
#                                       (-DCMAKE_DISABLE_FIND_PACKAGE_<dep>=ON) and libpng, zlib,
#                                       OpenSSL and OpenMP left out as a bare machine would;
#                                       QUICK=1 compiles the bench's source instead of the whole
#                                       library and runs no bench (CI: tests/gpu_check_test.sh)
#   DEPS_DIR, BUILD_DIR, OUT_DIR         other folders than var/gpu-deps, build-gpu-check (CHECK=1)
#                                       or var/build-gpu, and the output folder
#   STEPS="preflight configure kernels" bash bench/gpu_check.sh
#                                       some steps only (a later call on the same warm machine
#                                       finds the build folder: "engine bench report")
#
# Steps: preflight (versions, headers, the GPU; stops the run with one line when it cannot
# work), configure, kernels (qdm_cuda_tests and the CPU kernel tests, built and run before the
# engine), engine (the library and the sampling bench), bench (DEVICE=cuda sampling: FP32 and
# W4A8), report. QDM_CUDA_SYNC=1 is on: each CUDA launch is waited for and checked.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
deps=${DEPS_DIR:-$root/var/gpu-deps}
artifact=var/bench/rtn_w4a8.safetensors
check=${CHECK:-0}
jobs=${JOBS:-$(nproc)}
start_all=$(date +%s)

# The header-only libraries and googletest's sources, from this machine's Debian packages.
prepare_deps() {
  rm -rf "$deps" && mkdir -p "$deps/include"
  for d in nlohmann CLI spdlog fmt; do cp -r "/usr/include/$d" "$deps/include/"; done
  cp -r /usr/src/googletest "$deps/googletest"
}

if [ "${PREPARE:-0}" = 1 ]; then
  set -e
  prepare_deps
  [ -s "$artifact" ] || { mkdir -p "$(dirname "$artifact")"; build/bin/qdm quantize --model models/fmnist-ddpm --recipe rtn \
    --wbits 4 --abits 8 --report-samples 0 --out "$artifact" >/dev/null; }
  du -sh "$deps" "$artifact"
  cat <<EOF
Carried to the GPU machine with the working tree (the device tool's run):
  command: bash bench/gpu_check.sh   (timeout_s 540; STEPS="preflight configure kernels" first if time is short)
  carry:   ["var/gpu-deps", "var/bench"]
EOF
  exit 0
fi

if [ "$check" = 1 ]; then
  out=${OUT_DIR:-$root/var/gpu-check-out}
  build=${BUILD_DIR:-$root/build-gpu-check}
  [ -f "$deps/include/nlohmann/json.hpp" ] || prepare_deps
else
  out=${OUT:-${OUT_DIR:-$root/bench/results}}
  build=$root/var/build-gpu
fi
mkdir -p "$out"
logs=$out/gpu_check_logs
mkdir -p "$logs"
summary=$logs/steps.tsv
steps=${STEPS:-preflight configure kernels engine bench report}
[ "$check" = 1 ] && [ "${QUICK:-0}" = 1 ] && steps=${STEPS:-preflight configure kernels engine report}
: > "$summary"

declare -A status
# step NAME FUNCTION [NEEDS...]: runs FUNCTION with its output in $logs/NAME.log, records the
# result; skipped when a step it needs did not pass.
step() {
  local name=$1 fn=$2; shift 2
  case " $steps " in *" $name "*) ;; *) return 0 ;; esac
  for need in "$@"; do
    if [ "${status[$need]:-}" != ok ] && [ "${status[$need]:-}" != "" ]; then
      status[$name]=skipped
      printf '%s\tskipped\t0\tneeds %s\n' "$name" "$need" >> "$summary"
      echo "gpu_check: $name skipped (needs $need)"
      return 0
    fi
  done
  local t0=$(date +%s) log=$logs/$name.log
  note=""
  "$fn" > "$log" 2>&1
  local rc=$? secs=$(( $(date +%s) - t0 ))
  if [ $rc = 0 ]; then
    status[$name]=ok
    echo "gpu_check: $name ok (${secs} s)${note:+: $note}"
  else
    status[$name]=failed
    [ -n "$note" ] || note=$(grep -m1 -iE 'error|fatal|fail' "$log" | cut -c1-200)
    echo "gpu_check: $name FAILED (${secs} s): ${note:-see $log}"
  fi
  printf '%s\t%s\t%s\t%s\n' "$name" "${status[$name]}" "$secs" "$note" >> "$summary"
}

# ---- preflight: what this machine has, and whether the run can work at all ----
python=""
torch_prefix=""
nvcc=""
preflight() {
  local fatal=()
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(hostname)  cores: $(nproc)"
  echo "cmake: $(cmake --version 2>/dev/null | head -1 || echo missing)"
  echo "c++: $(c++ --version 2>/dev/null | head -1 || echo missing)"
  command -v cmake >/dev/null || fatal+=("no cmake")
  command -v c++ >/dev/null || fatal+=("no C++ compiler")
  local cmv; cmv=$(cmake --version 2>/dev/null | sed -n 's/cmake version \([0-9]*\.[0-9]*\).*/\1/p')
  if [ -n "$cmv" ] && [ "$(printf '%s\n3.22\n' "$cmv" | sort -V | head -1)" != 3.22 ]; then fatal+=("cmake $cmv < 3.22"); fi
  # One nvcc for everything: CUDACXX, else the one on PATH, else /usr/local/cuda's.
  nvcc=${CUDACXX:-$(command -v nvcc || true)}
  [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
  if [ -n "$nvcc" ]; then
    echo "nvcc: $nvcc: $("$nvcc" --version | tail -2 | head -1)"
  else
    echo "nvcc: missing"
    [ "$check" = 1 ] || fatal+=("no nvcc (set CUDACXX)")
  fi
  local nvsmi=""
  if command -v nvidia-smi >/dev/null; then
    nvsmi=$(nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader 2>&1 | head -1)
    echo "gpu: $nvsmi"
    echo "driver CUDA: $(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -1)"
  else
    echo "gpu: nvidia-smi missing"
  fi
  if [ "$check" = 1 ]; then
    echo "torch: Debian's CPU LibTorch (CHECK=1)"
  else
    for p in python3 python; do
      if command -v "$p" >/dev/null && "$p" -c "import torch" 2>/dev/null; then python=$(command -v "$p"); break; fi
    done
    if [ -z "$python" ]; then
      fatal+=("no python with torch (python3 -c 'import torch' fails)")
    else
      "$python" - <<'EOF'
import torch
print("torch:", torch.__version__, "cuda", torch.version.cuda, "cxx11 abi", torch.compiled_with_cxx11_abi(),
      "cuda available", torch.cuda.is_available(), "devices", torch.cuda.device_count())
print("cmake prefix:", torch.utils.cmake_prefix_path)
EOF
      torch_prefix=$("$python" -c "import torch; print(torch.utils.cmake_prefix_path)")
      "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || fatal+=("torch sees no CUDA device")
      [ -n "$("$python" -c 'import torch; print(torch.version.cuda or "")')" ] || fatal+=("this torch is a CPU build")
    fi
    # The driver must be as new as the toolkit that compiles our kernels (nvcc 13 needs a
    # CUDA 13 driver): warn, the build steps still check compilation.
    local drv nv
    drv=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9]*\.[0-9]*\).*/\1/p' | head -1)
    nv=$([ -n "$nvcc" ] && "$nvcc" --version | sed -n 's/.*release \([0-9]*\.[0-9]*\).*/\1/p')
    if [ -n "$drv" ] && [ -n "$nv" ] && [ "$(printf '%s\n%s\n' "$drv" "$nv" | sort -V | head -1)" != "$nv" ]; then
      echo "WARNING: the driver supports CUDA $drv but nvcc is $nv: kernels it builds may not load"
      note="driver CUDA $drv < nvcc $nv"
    fi
  fi
  # Headers the engine-only build includes: from the system or carried in var/gpu-deps.
  local inc
  for h in nlohmann/json.hpp CLI/CLI.hpp spdlog/spdlog.h fmt/format.h gtest/gtest.h png.h zlib.h openssl/evp.h omp.h; do
    inc=""
    for d in /usr/include /usr/local/include "$deps/include" "$deps/googletest/googletest/include"; do
      [ -f "$d/$h" ] && { inc=$d; break; }
    done
    [ -z "$inc" ] && [ "$h" = omp.h ] && inc=$(echo '#include <omp.h>' | c++ -fopenmp -E -x c++ - 2>/dev/null | grep -m1 -o '/[^"]*omp.h' || true)
    echo "header $h: ${inc:-missing}"
    case $h in
      png.h|zlib.h|openssl/evp.h|omp.h) ;;  # optional in engine-only builds
      *) [ -n "$inc" ] || fatal+=("header $h missing (run PREPARE=1 here and carry var/gpu-deps)") ;;
    esac
  done
  if [ ${#fatal[@]} -gt 0 ]; then
    note="stopped: ${fatal[*]}"
    echo "PREFLIGHT: ${fatal[*]}"
    return 1
  fi
  echo "preflight: ok"
}

cuda_env() {
  [ -n "$nvcc" ] || return 0
  local cuda_root; cuda_root=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
  export CUDACXX=$nvcc CUDA_PATH=$cuda_root CUDA_HOME=$cuda_root PATH="$cuda_root/bin:$PATH"
  if [ "$check" != 1 ] && [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
    local cc; cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' ')
    export TORCH_CUDA_ARCH_LIST=${cc:-9.0}
  fi
  [ -n "${CUDA_ARCH:-}" ] || CUDA_ARCH=${TORCH_CUDA_ARCH_LIST:+$(echo "$TORCH_CUDA_ARCH_LIST" | tr -d '.')}
}

configure() {
  local disable=()
  if [ "$check" = 1 ]; then
    for dep in nlohmann_json CLI11 spdlog fmt GTest PNG ZLIB OpenSSL OpenMP; do disable+=("-DCMAKE_DISABLE_FIND_PACKAGE_$dep=ON"); done
    disable+=(-DQDM_NO_DNNL=ON)  # oneDNN is optional too (the fp32 convolutions then use gemm_f32)
    rm -f "$build/CMakeCache.txt"  # a fresh configure (objects are kept for a rerun)
  fi
  echo "CUDACXX=${CUDACXX:-} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-} CUDA_ARCH=${CUDA_ARCH:-}"
  local gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DQDM_ENGINE_ONLY=ON -DQDM_DEPS_DIR="$deps" \
    ${torch_prefix:+-DCMAKE_PREFIX_PATH="$torch_prefix"} ${CUDA_ARCH:+-DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH"} "${disable[@]}"
  local rc=$?
  cp "$build/CMakeFiles/CMakeOutput.log" "$build/CMakeFiles/CMakeError.log" "$logs/" 2>/dev/null
  [ $rc = 0 ] || return $rc
  if [ "$check" != 1 ] && ! grep -q 'integer layers run on the GPU' "$logs/configure.log"; then
    note="LibTorch has no CUDA: the integer layers would not run on the GPU"
    return 1
  fi
}

kernels() {
  local targets=(qdm_kernel_tests qdm_format_tests)
  [ -n "$nvcc" ] && targets=(qdm_cuda_tests "${targets[@]}")
  cmake --build "$build" -j "$jobs" --target "${targets[@]}" || return 1
  local rc=0
  for t in "${targets[@]}"; do
    echo "== $t"
    QDM_CUDA_SYNC=1 "$build/bin/$t" --gtest_brief=1 || rc=1
  done
  return $rc
}

engine() {
  if [ "$check" = 1 ] && [ "${QUICK:-0}" = 1 ]; then
    # The bench's source only: the carried spdlog, fmt, CLI11 and nlohmann headers against
    # LibTorch's, without the library's hour of compiling on two cores.
    note="QUICK=1: sampling_bench.cpp compiled, the library not built"
    cmake --build "$build" -j "$jobs" --target CMakeFiles/qdm_sampling_bench.dir/bench/sampling_bench.cpp.o
    return
  fi
  cmake --build "$build" -j "$jobs" --target qdm_sampling_bench
}

bench() {
  local dev=cuda; [ "$check" = 1 ] && dev=cpu
  local steps_n=100; [ "$check" = 1 ] && steps_n=2
  local batches=1,64; [ "$check" = 1 ] && batches=1
  [ -s "$artifact" ] || { note="no $artifact (PREPARE=1 here, carry var/bench)"; return 1; }
  local rc=0
  echo "== FP32 (LibTorch on $dev)"
  QDM_CUDA_SYNC=1 "$build/bin/qdm_sampling_bench" --model models/fmnist-ddpm --device $dev --steps $steps_n --batches $batches \
    --out "$logs/bench_fp32.md" || rc=1
  echo "== W4A8 (integer kernels on $dev)"
  QDM_CUDA_SYNC=1 "$build/bin/qdm_sampling_bench" --artifact "$artifact" --kernels int --device $dev --steps $steps_n \
    --batches $batches --out "$logs/bench_w4a8.md" || rc=1
  return $rc
}

report() {
  local md=$out/gpu_check.md
  {
    if [ "$check" = 1 ]; then
      echo "# GPU check, CPU-side steps (CHECK=1${QUICK:+, QUICK=$QUICK}): every carried dependency forced"
    else
      echo "# GPU check: the CUDA integer kernels and GPU sampling on a real GPU"
    fi
    echo
    echo "\`$( [ "$check" = 1 ] && echo "CHECK=1 ")bash bench/gpu_check.sh\`, $(date -u +%Y-%m-%d), $(grep -m1 '^gpu:' "$logs/preflight.log" 2>/dev/null | cut -c6-)"
    grep -E '^(torch|nvcc|driver CUDA|cmake|c\+\+):' "$logs/preflight.log" 2>/dev/null | sed 's/^/- /'
    echo
    echo "| step | result | seconds | note |"
    echo "|---|---|---:|---|"
    local row_step row_status row_secs row_note
    while IFS=$'\t' read -r row_step row_status row_secs row_note; do
      echo "| $row_step | $row_status | $row_secs | ${row_note//|/\\|} |"
    done < "$summary"
    echo
    echo "Total so far: $(( $(date +%s) - start_all )) s with $jobs build jobs. Logs: \`gpu_check_logs/<step>.log\`."
    if [ -f "$logs/kernels.log" ]; then
      echo
      echo "## Kernel tests"
      echo
      echo '```'
      grep -E '^(==|\[  (PASSED|FAILED|SKIPPED) |\[==========\])' "$logs/kernels.log" | tail -30
      echo '```'
    fi
    for f in bench_fp32 bench_w4a8; do
      [ -f "$logs/$f.md" ] || continue
      echo
      sed -n '/^|/p' "$logs/$f.md"
    done
  } > "$md"
  cat "$md"
}

step preflight preflight
[ "${status[preflight]:-ok}" = failed ] && { echo "gpu_check: stopped at preflight: $(tail -1 "$summary" | cut -f4)"; step report report; exit 1; }
cuda_env
step configure configure preflight
step kernels kernels configure
step engine engine configure
step bench bench engine
step report report
grep -q $'\tfailed\t' "$summary" && exit 1
exit 0
