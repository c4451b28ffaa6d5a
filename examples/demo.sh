#!/usr/bin/env bash
# Builds slitter in release mode and runs the C demos against it.
#
#   examples/demo.sh
#
# Needs cargo; installs a C compiler with apt-get if `cc` is missing (run as
# root on a Debian-like system in that case).
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
OUT_DIR=$TARGET_DIR/demo
mkdir -p "$OUT_DIR"

echo
echo "== Part 1: the class API (examples/class_demo.c)"
cc -std=c11 -Wall -Wextra -Werror -I "$ROOT/include" \
	"$ROOT/examples/class_demo.c" \
	-L "$LIB_DIR" -lslitter -Wl,-rpath,"$LIB_DIR" \
	-o "$OUT_DIR/class_demo"
"$OUT_DIR/class_demo"

# == Part 2: slitter as the process's malloc (LD_PRELOAD)
# Not written yet: it comes with the LD_PRELOAD malloc front end, which the
# library does not provide so far.
