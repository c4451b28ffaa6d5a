#!/usr/bin/env bash
# slitter as the malloc of a program that was not built for it: python3
# run with LD_PRELOAD=libslitter.so.
#
#   examples/preload_demo.sh [path/to/libslitter.so]
#
# The library is the first argument, else $SLITTER_LIB. examples/demo.sh
# builds the release library and passes it; tests/examples.rs passes the
# debug one that `cargo test` built. The interpreter is $PYTHON, else
# python3 from $PATH (installed with apt-get when missing: run as root on a
# Debian-like system in that case).
#
# Shows, and fails unless it is so:
#   1. without slitter, malloc comes from the C library; with LD_PRELOAD it
#      comes from libslitter.so, and the same script gives the same output;
#   2. SLITTER_STATS=1 prints slitter's statistics table at exit (its
#      summary lines are shown);
#   3. a double free, made through ctypes, stops the process with one
#      `slitter:` line and SIGABRT.
# Ends with the line "preload demo finished".
set -euo pipefail

LIB=${1:-${SLITTER_LIB:-}}
if [[ -z $LIB ]]; then
	echo "usage: $0 path/to/libslitter.so (or set SLITTER_LIB)" >&2
	exit 2
fi
if [[ ! -f $LIB ]]; then
	echo "$0: $LIB does not exist (build it with cargo build --release)" >&2
	exit 2
fi
LIB=$(realpath "$LIB")

if [[ -z ${PYTHON:-} ]]; then
	if ! command -v python3 >/dev/null 2>&1; then
		echo "== python3 not found: installing it with apt-get"
		apt-get update
		DEBIAN_FRONTEND=noninteractive apt-get install -y python3
	fi
	# The interpreter itself, not a wrapper script on $PATH (pyenv's shims
	# are shell scripts, which would run under slitter too).
	PYTHON=$(python3 -c 'import sys; print(sys.executable)')
fi

fail() {
	echo "preload demo FAILED: $*" >&2
	exit 1
}

echo "== slitter as the process's malloc (LD_PRELOAD=$LIB)"

WORKLOAD='
import ctypes, json
libc = ctypes.CDLL(None)
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

echo
echo "\$ python3 (without slitter)"
plain=$("$PYTHON" -c "$WORKLOAD")
echo "$plain"
echo "\$ LD_PRELOAD=$LIB python3"
preloaded=$(LD_PRELOAD="$LIB" "$PYTHON" -c "$WORKLOAD")
echo "$preloaded"
[[ $preloaded == *"malloc comes from $LIB"* ]] ||
	fail "malloc does not come from $LIB under LD_PRELOAD"
[[ $plain != *"malloc comes from $LIB"* ]] ||
	fail "malloc comes from slitter even without LD_PRELOAD"
[[ $(tail -n 1 <<<"$plain") == "$(tail -n 1 <<<"$preloaded")" ]] ||
	fail "the script's output differs under slitter"

echo
echo "\$ SLITTER_STATS=1 LD_PRELOAD=$LIB python3 -c pass   (summary lines of the table)"
table=$(SLITTER_STATS=1 LD_PRELOAD="$LIB" "$PYTHON" -c pass 2>&1)
summary=$(grep -E '^slitter: (total|classes:|mapper|large allocations:|internal:|counts)' <<<"$table") ||
	fail "no statistics table at exit:"$'\n'"$table"
echo "$summary"

echo
echo "\$ LD_PRELOAD=$LIB python3   (a double free through ctypes)"
DOUBLE_FREE='
import ctypes
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
p = libc.malloc(48)
libc.free(p)
libc.free(p)
'
status=0
# No core file for the expected crash.
stderr=$(
	ulimit -c 0
	LD_PRELOAD="$LIB" "$PYTHON" -c "$DOUBLE_FREE" 2>&1 >/dev/null
) || status=$?
echo "$stderr"
((status == 128 + 6)) || fail "expected SIGABRT (status 134), got status $status"
[[ $stderr == "slitter: double free of 0x"* ]] || fail "no double free report"
echo "python3 was stopped by SIGABRT"

echo
echo "preload demo finished"
