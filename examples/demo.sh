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

echo
echo "== Part 2: slitter as the process's malloc (LD_PRELOAD)"
PYTHON=$(command -v python3 || true)
if [[ -z $PYTHON ]]; then
	echo "== python3 not found: installing it with apt-get"
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y python3
	PYTHON=$(command -v python3)
fi
SCRIPT='
import ctypes, json
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.dladdr.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
class DlInfo(ctypes.Structure):
    _fields_ = [("fname", ctypes.c_char_p), ("fbase", ctypes.c_void_p),
                ("sname", ctypes.c_char_p), ("saddr", ctypes.c_void_p)]
info = DlInfo()
libc.dladdr(ctypes.cast(libc.malloc, ctypes.c_void_p), ctypes.byref(info))
print("malloc comes from", info.fname.decode())
words = {str(i): [i] * (i % 7) for i in range(200000)}
text = json.dumps(words)
print("built and serialised", len(words), "dict entries,", len(text), "bytes of JSON")
'
echo "\$ python3 (without slitter)"
"$PYTHON" -c "$SCRIPT"
echo "\$ LD_PRELOAD=$LIB_DIR/libslitter.so python3"
LD_PRELOAD="$LIB_DIR/libslitter.so" "$PYTHON" -c "$SCRIPT"
echo
echo "== demo finished"
