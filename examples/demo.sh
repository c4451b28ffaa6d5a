#!/usr/bin/env bash
# Builds slitter in release mode and runs the demos against it: the C class
# API (examples/class_demo.c), then slitter as the malloc of python3 under
# LD_PRELOAD (examples/preload_demo.sh).
#
#   examples/demo.sh
#
# Needs cargo; installs a C compiler and python3 with apt-get if they are
# missing (run as root on a Debian-like system in that case).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

if ! command -v cc >/dev/null 2>&1; then
	echo "== cc not found: installing gcc with apt-get"
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y gcc libc6-dev
fi

echo "== cargo build --release"
cargo build --release

# Honour CARGO_TARGET_DIR like cargo does.
TARGET_DIR=${CARGO_TARGET_DIR:-target}
case $TARGET_DIR in
/*) ;;
*) TARGET_DIR=$ROOT/$TARGET_DIR ;;
esac
LIB_DIR=$TARGET_DIR/release
# Programs linked with -lslitter load libslitter.so by its SONAME,
# libslitter.so.0, which cargo does not make (`make` makes it too).
ln -sf libslitter.so "$LIB_DIR/libslitter.so.0"
OUT_DIR=$TARGET_DIR/demo
mkdir -p "$OUT_DIR"

echo
echo "== Part 1: the class API (examples/class_demo.c)"
cc -std=c11 -Wall -Wextra -Werror -I "$ROOT/include" \
	"$ROOT/examples/class_demo.c" \
	-L "$LIB_DIR" -lslitter -Wl,-rpath,"$LIB_DIR" \
	-o "$OUT_DIR/class_demo"
"$OUT_DIR/class_demo"

echo
echo "== Part 2: examples/preload_demo.sh"
"$ROOT/examples/preload_demo.sh" "$LIB_DIR/libslitter.so"

echo
echo "== demo finished"
