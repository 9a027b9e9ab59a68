#!/usr/bin/env bash
# Runs the Qt app and its tests on the GPU machine (the `run` tool's device), which has no Qt.
#
#   scripts/gui-on-device.sh pack BUILD_DIR [OUT_DIR]   (here) bundles, into OUT_DIR (default
#       .carry/gui): libs.txz = the shared libraries that mambascope, ui_tests and cuda_tests
#       load (ldd, less glibc and libstdc++, which the device has in newer versions), Qt's
#       offscreen platform plugin, three DejaVu fonts and a fonts.conf; bin.txz = the three
#       binaries, stripped. xz -9 keeps it small: the three binaries share their CUDA kernels
#       (~4 MB together), the libraries are ~27 MB (ICU's data alone is 7.5). BUILD_DIR must be
#       a build with MAMBASCOPE_UI=ON and CUDA.
#   scripts/gui-on-device.sh run [OUT_DIR] [SOURCE_DIR]   (on the device, from the repository
#       root) unpacks to /tmp/g (python3's tarfile: the device image may lack xz), links
#       SOURCE_DIR (the source folder BUILD_DIR was configured from, default /work/main) to the
#       working tree for the fixtures' compiled-in paths, runs ui_tests and the app headless on
#       the CUDA backend (a screenshot after 24 greedy tokens, every view exported), and leaves
#       results.tgz and main_cuda.png in $OUT.
#
# The tree + OUT_DIR must stay under the carry limit (64 MiB): pass OUT_DIR in `carry`.
set -uo pipefail

pack() {
  local build=$1 out=${2:-.carry/gui}
  local stage
  stage=$(mktemp -d)
  mkdir -p "$stage/lib/qt/lib" "$stage/lib/qt/platforms" "$stage/lib/qt/fonts" "$stage/bin" "$out"
  local bins=("$build/app/mambascope" "$build/tests/ui_tests" "$build/tests/cuda_tests")
  local plugin=/usr/lib/x86_64-linux-gnu/qt6/plugins/platforms/libqoffscreen.so
  for b in "${bins[@]}"; do strip -o "$stage/bin/$(basename "$b")" "$b" || exit 1; done
  # The device has glibc, libstdc++ and the CUDA toolkit's libraries (/usr/local/cuda) itself.
  ldd "${bins[@]}" "$plugin" | awk '/=> \//{print $3}' | sort -u | while read -r f; do
    case $f in
      /usr/local/cuda*|*/libc.so.*|*/libm.so.*|*/libstdc++.so.*|*/libgcc_s.so.*|*/ld-linux*) ;;
      *) cp -L "$f" "$stage/lib/qt/lib/" ;;
    esac
  done
  cp "$plugin" "$stage/lib/qt/platforms/"
  cp /usr/share/fonts/truetype/dejavu/DejaVuSans{,-Bold,Mono}.ttf "$stage/lib/qt/fonts/"
  cat > "$stage/lib/qt/fonts.conf" <<'EOF'
<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <dir>/tmp/g/qt/fonts</dir>
  <cachedir>/tmp/g/qt/fontcache</cachedir>
</fontconfig>
EOF
  tar -C "$stage/lib" -cf - . | xz -9 -T2 > "$out/libs.txz"
  tar -C "$stage/bin" -cf - . | xz -9 -T2 > "$out/bin.txz"
  rm -rf "$stage"
  ls -l "$out"
}

run() {
  local in=${1:-.carry/gui} src=${2:-/work/main}
  local t0 model=$PWD/models/mamba-tinystories-9m
  t0=$(date +%s)
  mkdir -p /tmp/g "$(dirname "$src")" /tmp/home/run && chmod 700 /tmp/home/run
  [ "$src" -ef "$PWD" ] || ln -sfn "$PWD" "$src"
  python3 -c "import sys, tarfile; [tarfile.open(a).extractall('/tmp/g') for a in sys.argv[1:]]" \
    "$in/libs.txz" "$in/bin.txz" || exit 9
  export LD_LIBRARY_PATH=/tmp/g/qt/lib:/usr/local/cuda/lib64 MAMBASCOPE_ASSETS_DIR=$PWD/assets \
    QT_QPA_PLATFORM=offscreen QT_QPA_PLATFORM_PLUGIN_PATH=/tmp/g/qt/platforms \
    FONTCONFIG_FILE=/tmp/g/qt/fonts.conf HOME=/tmp/home XDG_CONFIG_HOME=/tmp/home/.config \
    XDG_RUNTIME_DIR=/tmp/home/run
  local res=/tmp/gui-results
  mkdir -p "$res/views"
  cd /tmp/g || exit 9
  ldd ./mambascope ./ui_tests | grep "not found" > "$res/ldd_missing.txt"
  timeout 60 ./ui_tests --gtest_brief=1 > "$res/ui_tests.log" 2>&1
  echo "rc=$?" >> "$res/ui_tests.log"
  timeout 30 ./mambascope --screenshot "$OUT/main_cuda.png" --export-views "$res/views" --backend cuda \
    --model "$model" --prompt "Once upon a time, a little fox" --max-tokens 24 --temperature 0 \
    --size 1600x1000 > "$res/app_cuda.txt" 2>&1
  echo "rc=$?" >> "$res/app_cuda.txt"
  echo "$(( $(date +%s) - t0 )) s" > "$res/time.txt"
  tail -n 4 "$res"/*.log "$res"/*.txt
  tar -C "$res" -czf "$OUT/results.tgz" .
}

case ${1:-} in
  pack) shift; pack "$@" ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 pack BUILD_DIR [OUT_DIR] | run [OUT_DIR] [SOURCE_DIR]" >&2; exit 2 ;;
esac
