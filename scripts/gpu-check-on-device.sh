#!/usr/bin/env bash
# The GPU checks a session runs on the device (the `run` tool's H200) before it resolves GPU work:
# every CUDA test, the lab's GPU tests, compute-sanitizer on the kernels, and the benchmarks.
#
#   scripts/gpu-check-on-device.sh pack BUILD_DIR [OUT_DIR]   (here) bundles, into OUT_DIR
#       (default .carry/gpu): bin.txz = cuda_tests, engine_tests, mambascope-bench and
#       mambascope-cli, stripped (xz -9e: its 64 MiB window spans all four binaries, which share
#       their kernels: ~6 MB against ~20 at xz -6 and more as gzip, so that the working tree + both
#       archives stay under the 64 MiB carry limit); libs.tgz = the Debian libraries they load that the device lacks
#       (OpenBLAS, FFTW, SentencePiece and their runtime dependencies). BUILD_DIR is a CUDA build,
#       e.g. `cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release
#       -DCMAKE_CUDA_ARCHITECTURES=90 -DMAMBASCOPE_UI=OFF`.
#   scripts/gpu-check-on-device.sh run [OUT_DIR] [WHAT…]   (on the device, from the repository
#       root; pass OUT_DIR in `carry`) runs WHAT (default: tests memcheck bench) and leaves logs and
#       the benchmarks' JSON lines in $OUT. WHAT: tests | memcheck | synccheck | racecheck | bench.
#
# The tests find their fixtures through the source path compiled into them; `run` links the
# build's source folder (default /work/main, MAMBASCOPE_SOURCE_DIR overrides) to the working tree.
set -uo pipefail

pack() {
  local build=$1 out=${2:-.carry/gpu}
  local stage
  stage=$(mktemp -d)
  mkdir -p "$stage/bin" "$stage/lib" "$out"
  local bins=("$build/tests/cuda_tests" "$build/tests/engine_tests" "$build/app/mambascope-bench"
              "$build/app/mambascope-cli")
  for b in "${bins[@]}"; do strip -o "$stage/bin/$(basename "$b")" "$b" || exit 1; done
  # The device has glibc (a newer one: its libpthread/libdl/librt stubs must not be shadowed),
  # libstdc++ and the CUDA toolkit's libraries itself.
  ldd "${bins[@]}" | awk '/=> \//{print $3}' | sort -u | while read -r f; do
    case $f in
      /usr/local/cuda*|*/libc.so.*|*/libm.so.*|*/libstdc++.so.*|*/libgcc_s.so.*|*/ld-linux*) ;;
      */libpthread.so.*|*/libdl.so.*|*/librt.so.*) ;;
      *) cp -L "$f" "$stage/lib/" ;;
    esac
  done
  tar -C "$stage/bin" -cf - . | xz -T2 -9e > "$out/bin.txz" || exit 1
  rm -f "$out/bin.tgz"
  tar -C "$stage/lib" -czf "$out/libs.tgz" .
  rm -rf "$stage"
  ls -l "$out"
}

run() {
  local in=${1:-.carry/gpu}
  shift || true
  local what=("$@")
  [ ${#what[@]} -gt 0 ] || what=(tests memcheck bench)
  local src=${MAMBASCOPE_SOURCE_DIR:-/work/main}
  mkdir -p /tmp/g "$(dirname "$src")"
  [ "$src" -ef "$PWD" ] || ln -sfn "$PWD" "$src"
  # python3's tarfile: the device image may lack xz.
  tar -C /tmp/g -xzf "$in/libs.tgz" &&
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$in/bin.txz" /tmp/g ||
    exit 9
  export LD_LIBRARY_PATH=/tmp/g:/usr/local/cuda/lib64 MAMBASCOPE_ASSETS_DIR=$PWD/assets
  cd /tmp/g || exit 9
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > "$OUT/gpu.txt" 2>&1
  # The kernels' tests; the one that provokes an out-of-memory cudaMalloc on purpose is left out
  # of the sanitizers (they report that API error by design).
  local kernels='Shapes/ScanVsCpu.*:Tiles/ScanTiles.*:*ScanChunks*:Scan.*:*FusedStep*:*GpuSampling*:*Probe*:*Modes*'
  for w in "${what[@]}"; do
    case $w in
      tests)
        timeout 300 ./cuda_tests --gtest_brief=1 > "$OUT/cuda_tests.log" 2>&1
        echo "rc=$?" >> "$OUT/cuda_tests.log"
        timeout 200 ./engine_tests --gtest_brief=1 --gtest_filter='LabOnGpu.*:*Gpu*:*Cuda*' \
          > "$OUT/engine_gpu.log" 2>&1
        echo "rc=$?" >> "$OUT/engine_gpu.log" ;;
      memcheck|synccheck)
        MAMBASCOPE_TEST_DRAWS=2000 timeout 300 compute-sanitizer --tool "$w" \
          --print-limit 20 ./cuda_tests --gtest_brief=1 \
          --gtest_filter="$kernels:-*AWorkspaceTooLarge*:*RejectsATooLarge*" > "$OUT/$w.log" 2>&1
        echo "rc=$?" >> "$OUT/$w.log" ;;
      racecheck)
        # racecheck instruments every shared-memory access, so it runs on what it can finish:
        # the scan's hand-over in miniature (tests/cuda/barrier_handover.cu), with bar.arrive as
        # the scan has it and with bar.sync on both sides, each on its own; then one scan test (4 states per lane, 128-token tiles, 8 tiles, 2 sequences).
        for t in ArriveThenSync SyncOnBothSides; do
          timeout 120 compute-sanitizer --tool racecheck --racecheck-report all --print-limit 20 \
            ./cuda_tests --gtest_brief=1 --gtest_filter="BarrierHandover.$t*" > "$OUT/racecheck_$t.log" 2>&1
          echo "rc=$?" >> "$OUT/racecheck_$t.log"
        done
        timeout 240 compute-sanitizer --tool racecheck --racecheck-report all --print-limit 20 \
          ./cuda_tests --gtest_brief=1 \
          --gtest_filter='Tiles/ScanTiles.EveryTileLengthMatchesTheRecurrence/8' > "$OUT/racecheck.log" 2>&1
        echo "rc=$?" >> "$OUT/racecheck.log" ;;
      bench)
        timeout 60 ./mambascope-bench --scan --reps 10 > "$OUT/bench_scan.jsonl" 2> "$OUT/bench_scan.err"
        timeout 300 ./mambascope-bench --models 130m,1.4b,2.8b --long-prefill --reps 5 --dir /tmp/bm \
          > "$OUT/bench_models.jsonl" 2> "$OUT/bench_models.err"
        timeout 200 ./mambascope-bench --explorer --models 130m,1.4b,2.8b --decode-tokens 128 \
          --dir /tmp/bm > "$OUT/bench_explorer.jsonl" 2> "$OUT/bench_explorer.err" ;;
      *) echo "unknown check: $w" >&2 ;;
    esac
  done
  for f in "$OUT"/*.log; do echo "== $f"; tail -n 4 "$f"; done
}

case ${1:-} in
  pack) shift; pack "$@" ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 pack BUILD_DIR [OUT_DIR] | run [OUT_DIR] [tests|memcheck|synccheck|racecheck|bench]..." >&2
     exit 2 ;;
esac
