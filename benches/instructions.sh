#!/usr/bin/env bash
# Counts the instructions of one allocate+release pair of a 32-byte object
# with callgrind, for:
#   - slitter's C class API (slitter_allocate + slitter_release, dynamically
#     linked against libslitter.so),
#   - slitter's malloc(32) + free (LD_PRELOADed),
#   - mimalloc's malloc(32) + free (LD_PRELOADed),
#   - glibc's malloc(32) + free.
#
# Each variant runs benches/pair_loop.c twice, with N and 2N pairs; the cost
# of a pair is (Ir(2N) - Ir(N)) / N, so start-up, class registration and
# the first refills cancel out. The loop itself (an increment, a compare
# and a branch) is included in every figure; the "loop only" row measures it.
#
# Two columns: "pair only" is the loop as specified (the heap holds at most
# one object, so each free empties its page, which sends mimalloc's free to
# its page-retire path every time); "+1 live obj" keeps one more object
# allocated for the whole loop (pair_loop's "anchored" argument), which is
# the usual steady state of a real heap.
#
# Installs valgrind and libmimalloc2.0 with apt-get when missing (needs root
# or sudo). Exits non-zero only when a tool fails, never because of the
# numbers.
#
# Environment: CARGO_TARGET_DIR (default ./target), CC (default cc),
# N (default 1000000), FEATURES (cargo features of the slitter build, e.g.
# measure_without_checks to count the pair without the misuse checks).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=benches/common.sh
source "$root/benches/common.sh"
cd "$root"

lib_dir="$target_dir/release"
n="${N:-1000000}"
cc="${CC:-cc}"

# --- build slitter ---------------------------------------------------------
log "== cargo build --release ${FEATURES:+--features $FEATURES }(target dir: $target_dir)"
cargo build --release ${FEATURES:+--features "$FEATURES"}
[[ -f "$lib_dir/libslitter.so" ]] || die "no $lib_dir/libslitter.so after the build"

# --- tools -----------------------------------------------------------------

mimalloc_path() {
	local pkg path
	for pkg in libmimalloc2.0 libmimalloc-dev; do
		if dpkg -s "$pkg" >/dev/null 2>&1; then
			path="$(dpkg -L "$pkg" | grep -E '/libmimalloc\.so(\.[0-9.]+)?$' | sort | tail -n 1 || true)"
			if [[ -n "$path" && -e "$path" ]]; then
				printf '%s\n' "$path"
				return 0
			fi
		fi
	done
	path="$(ldconfig -p | awk '/libmimalloc\.so/ { print $NF; exit }' || true)"
	if [[ -n "$path" && -e "$path" ]]; then
		printf '%s\n' "$path"
		return 0
	fi
	return 1
}

packages=()
command -v valgrind >/dev/null || packages+=(valgrind)
mimalloc_path >/dev/null || packages+=(libmimalloc2.0)
if ((${#packages[@]} > 0)); then
	log "== installing ${packages[*]}"
	mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)
	as_root apt-get update
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		"${packages[@]}"
fi
mimalloc="$(mimalloc_path)" || die "libmimalloc.so not found after installing libmimalloc2.0"
log "== mimalloc: $mimalloc"

# --- compile the loop ------------------------------------------------------
tmp="$(mktemp -d "${TMPDIR:-/tmp}/slitter-instructions.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

log "== compiling benches/pair_loop.c"
# The loop loads libslitter.so by its SONAME, libslitter.so.0, which cargo
# does not make: a link in $tmp gives it that name.
ln -s "$lib_dir/libslitter.so" "$tmp/libslitter.so.0"
"$cc" -O2 -std=c11 -Wall -Wextra -Werror -I "$root/include" \
	"$root/benches/pair_loop.c" -o "$tmp/pair_loop" \
	-L "$lib_dir" -Wl,-rpath,"$tmp" -lslitter
"$cc" -O2 -std=c11 -Wall -Wextra -Werror -DMALLOC_ONLY \
	"$root/benches/pair_loop.c" -o "$tmp/pair_loop_malloc"

# Smoke test outside valgrind, so a crash is reported as such.
"$tmp/pair_loop" 1000 slitter
"$tmp/pair_loop_malloc" 1000 malloc
LD_PRELOAD="$mimalloc" "$tmp/pair_loop_malloc" 1000 malloc
LD_PRELOAD="$lib_dir/libslitter.so" "$tmp/pair_loop_malloc" 1000 malloc

# --- measure ---------------------------------------------------------------
# total_ir OUT_FILE: the total instruction count recorded in a callgrind
# output file ("totals:" line, else "summary:").
total_ir() {
	local total
	total="$(awk '/^totals:/ { print $2; found = 1; exit }
		/^summary:/ { summary = $2 }
		END { if (!found && summary != "") print summary }' "$1")"
	[[ "$total" =~ ^[0-9]+$ ]] || die "no instruction total in $1"
	printf '%s\n' "$total"
}

# measure LABEL EXPECTED_OBJECT PRELOAD PROGRAM ARGS...: prints the
# instructions per pair of `PROGRAM N ARGS...` (pair_loop, or
# pair_loop_malloc, which is not linked with slitter). EXPECTED_OBJECT (if not empty) must appear
# among the objects callgrind saw run, which checks that the intended
# allocator really ran; PRELOAD (if not empty) is LD_PRELOADed.
measure() {
	local label="$1" expected="$2" preload="$3" program="$4"
	shift 4
	local count out
	local -a totals=() envs=()
	[[ -z "$preload" ]] || envs=("LD_PRELOAD=$preload")
	for count in "$n" "$((2 * n))"; do
		out="$tmp/callgrind.$label.$count.out"
		env "${envs[@]}" \
			valgrind --tool=callgrind --callgrind-out-file="$out" \
			"$tmp/$program" "$count" "$@" 2>"$tmp/valgrind.$label.$count.log" ||
			{
				cat "$tmp/valgrind.$label.$count.log" >&2
				die "valgrind failed for $label with N=$count"
			}
		# Callgrind names each object once, on the first ob= or cob= line.
		if [[ -n "$expected" ]] && ! grep -Eq "^c?ob=.*$expected" "$out"; then
			die "$label: callgrind saw no code from $expected"
		fi
		totals+=("$(total_ir "$out")")
	done
	log "   $label: Ir($n) = ${totals[0]}, Ir($((2 * n))) = ${totals[1]}"
	awk -v a="${totals[0]}" -v b="${totals[1]}" -v n="$n" \
		'BEGIN { printf "%.2f\n", (b - a) / n }'
}

mimalloc_object="$(basename "$mimalloc")"
mimalloc_object="${mimalloc_object%%.so*}"

log "== callgrind, N = $n and $((2 * n))"
slitter_ir="$(measure slitter libslitter.so "" pair_loop slitter)"
slitter_anchored_ir="$(measure slitter-anchored libslitter.so "" pair_loop slitter anchored)"
slitter_malloc_ir="$(measure slitter-malloc libslitter.so "$lib_dir/libslitter.so" pair_loop_malloc malloc)"
slitter_malloc_anchored_ir="$(measure slitter-malloc-anchored libslitter.so "$lib_dir/libslitter.so" pair_loop_malloc malloc anchored)"
mimalloc_ir="$(measure mimalloc "$mimalloc_object" "$mimalloc" pair_loop_malloc malloc)"
mimalloc_anchored_ir="$(measure mimalloc-anchored "$mimalloc_object" "$mimalloc" pair_loop_malloc malloc anchored)"
glibc_ir="$(measure glibc libc.so "" pair_loop_malloc malloc)"
glibc_anchored_ir="$(measure glibc-anchored libc.so "" pair_loop_malloc malloc anchored)"
loop_ir="$(measure loop "" "" pair_loop_malloc loop)"

# --- report ----------------------------------------------------------------
row() { printf '%-38s %10s %12s\n' "$@"; }
printf '\nInstructions per 32-byte allocate+release pair (callgrind Ir, N = %s)\n\n' "$n"
row "" "pair only" "+1 live obj"
row "--------------------------------------" "----------" "------------"
row "slitter (slitter_allocate/_release)" "$slitter_ir" "$slitter_anchored_ir"
row "slitter (malloc/free, LD_PRELOAD)" "$slitter_malloc_ir" "$slitter_malloc_anchored_ir"
row "mimalloc (malloc/free, LD_PRELOAD)" "$mimalloc_ir" "$mimalloc_anchored_ir"
row "glibc (malloc/free)" "$glibc_ir" "$glibc_anchored_ir"
row "loop only (included in every row)" "$loop_ir" "$loop_ir"
awk -v s="$slitter_ir" -v m="$mimalloc_ir" -v g="$glibc_ir" \
	-v sa="$slitter_anchored_ir" -v ma="$mimalloc_anchored_ir" -v ga="$glibc_anchored_ir" \
	-v sm="$slitter_malloc_ir" -v sma="$slitter_malloc_anchored_ir" '
	function ratio(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "n/a" }
	BEGIN {
		printf "%-38s %10s %12s\n", "slitter class API / mimalloc", ratio(s, m), ratio(sa, ma)
		printf "%-38s %10s %12s\n", "slitter malloc / mimalloc", ratio(sm, m), ratio(sma, ma)
		printf "%-38s %10s %12s\n", "slitter class API / glibc", ratio(s, g), ratio(sa, ga)
	}'
