#!/usr/bin/env bash
# The runtime on aarch64, checked under qemu-user against the x86 build, bit for bit.
#
#   runtime/scripts/test_aarch64.sh [ARTIFACT_DIR]
#
# Cross-compiles the C++ core and a small C driver (scripts/check_driver.c) for aarch64 with
# Debian's g++-aarch64-linux-gnu, builds the same sources for the host, then
#   1. runs every kernel of every instruction set on random shapes (sizes not multiples of 64
#      included) against portable and an integer reference, under qemu-aarch64 and on the host;
#   2. runs each artifact (written by `bimlp export`: small paper-mode models, one with Wave-MLP
#      downsampling, and official (ternary) mode models from the released code's fixtures; or the
#      *.bimlp files of ARTIFACT_DIR: lines "NAME B H W" in its inputs.txt) with every instruction
#      set of both builds (aarch64: portable, neon; host: portable, avx2, avx512 where supported)
#      and compares the logits' bytes with the host's portable path.
# Installs the cross-compiler and qemu-user with apt-get when they are missing. Environment:
# PYTHON (a Python with torch and bimlp, default python3), JOBS (build jobs, default nproc).
# Exits 0 only when every output is bit-identical; the last line is a one-line summary.
# Speed on ARM is not measured here (qemu emulates; its timings mean nothing).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
runtime="$(dirname "$here")"
PYTHON="${PYTHON:-python3}"
JOBS="${JOBS:-$(nproc)}"
SYSROOT=/usr/aarch64-linux-gnu

fail() { echo "test_aarch64: FAIL: $*"; exit 1; }

need=()
command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
command -v cmake >/dev/null || need+=(cmake)
if ((${#need[@]})); then
  echo "installing ${need[*]} with apt-get"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${need[@]}" >/dev/null ||
    fail "could not install ${need[*]} (apt-get)"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/bimlp-aarch64.XXXXXX")"
trap 'rm -rf "$work"' EXIT

build() {  # build DIR [cmake args...]
  local dir="$1"; shift
  cmake -S "$runtime" -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >"$dir.log" 2>&1 ||
    { cat "$dir.log"; fail "cmake configure of $dir"; }
  cmake --build "$dir" -j "$JOBS" --target bimlp_runtime >>"$dir.log" 2>&1 ||
    { tail -40 "$dir.log"; fail "build of $dir"; }
}
echo "building the runtime for the host and for aarch64 (jobs: $JOBS)"
build "$work/host" &
host_pid=$!
build "$work/arm" -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
  -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++
wait "$host_pid" || fail "host build"
cc -O2 -std=c99 -Wall -I"$runtime/include" "$here/check_driver.c" -L"$work/host" -lbimlp_runtime \
  -Wl,-rpath,"$work/host" -o "$work/host/check_driver" -lm || fail "compiling the host driver"
aarch64-linux-gnu-gcc -O2 -std=c99 -Wall -I"$runtime/include" "$here/check_driver.c" -L"$work/arm" \
  -lbimlp_runtime -Wl,-rpath,"$work/arm" -o "$work/arm/check_driver" -lm || fail "compiling the aarch64 driver"
file "$work/arm/libbimlp_runtime.so" | grep -q aarch64 || fail "the cross build is not aarch64"

host() { "$work/host/check_driver" "$@"; }
arm() { QEMU_LD_PREFIX="$SYSROOT" qemu-aarch64 -L "$SYSROOT" "$work/arm/check_driver" "$@"; }

arm_isas="$(arm isas | xargs)"
host_isas="$(host isas | xargs)"
[[ " $arm_isas " == *" neon "* ]] || fail "the aarch64 build does not offer neon (it offers: $arm_isas)"

echo "kernels on random shapes:"
arm_k="$(arm kernels 12 60)" || { echo "$arm_k"; fail "aarch64 kernels"; }
echo "  aarch64: $arm_k"
[[ "$arm_k" == *" neon 60/60"* ]] || fail "the NEON one-pass unit kernel did not run every fused-unit case"
host_k="$(host kernels 12 60)" || { echo "$host_k"; fail "host kernels"; }
echo "  host:    $host_k"

if [ $# -ge 1 ]; then
  art="$1"
  [ -f "$art/inputs.txt" ] || fail "$art/inputs.txt (lines NAME B H W) is missing"
else
  art="$work/artifacts"
  echo "exporting artifacts with $PYTHON"
  "$PYTHON" "$here/make_check_artifacts.py" "$art" >"$work/inputs.txt" || fail "exporting artifacts"
  mv "$work/inputs.txt" "$art/inputs.txt"
fi

outputs=0 artifacts=0
while read -r name b h w; do
  [ -n "$name" ] || continue
  artifacts=$((artifacts + 1))
  ref="$work/$name.host.portable.f32"
  BIMLP_ISA=portable host run "$art/$name" "$b" "$h" "$w" "$ref" >/dev/null || fail "host portable on $name"
  for isa in $host_isas; do
    out="$work/$name.host.$isa.f32"
    BIMLP_ISA=$isa host run "$art/$name" "$b" "$h" "$w" "$out" >/dev/null || fail "host $isa on $name"
    cmp -s "$ref" "$out" || fail "$name: host $isa differs from host portable"
    outputs=$((outputs + 1))
  done
  for isa in $arm_isas; do
    out="$work/$name.arm.$isa.f32"
    BIMLP_ISA=$isa arm run "$art/$name" "$b" "$h" "$w" "$out" >/dev/null || fail "aarch64 $isa on $name"
    cmp -s "$ref" "$out" || fail "$name: aarch64 $isa differs from host portable"
    outputs=$((outputs + 1))
  done
  echo "  $name (${b}x${h}x${w}): aarch64 {$arm_isas} and host {$host_isas} bit-identical"
done <"$art/inputs.txt"
((artifacts)) || fail "no artifacts in $art/inputs.txt"

echo "test_aarch64: PASS: $artifacts artifacts, $outputs outputs (aarch64 $arm_isas under qemu, host $host_isas) bit-identical to the host's portable path; kernels ${arm_k#kernels: }"
