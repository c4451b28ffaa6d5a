#!/usr/bin/env bash
# Runs the allocation workloads of benches/workloads under glibc, jemalloc,
# mimalloc, tcmalloc and slitter, side by side, and prints the median wall
# time and peak RSS of each, the ratios slitter / each other allocator and
# their geometric means, and the 2-thread / 1-thread throughput ratio of
# the server workload, then counts that are not timings (live 64 KiB
# blocks and /proc/self/maps lines; fork latency under load; memory after
# a peak). See docs/benchmarks.md.
#
#   benches/compare.sh                                  # everything (~6-7 min)
#   ROUNDS=1 SCALE=small benches/compare.sh             # smoke run (~15 s + ~15 s
#                                                       # of after_peak per allocator)
#   ROUNDS=1 SCALE=small AFTER_PEAK_SCALE=0.05 benches/compare.sh  # quicker smoke run
#   ALLOCATORS=glibc,jemalloc,mimalloc,tcmalloc benches/compare.sh
#   ALLOCATORS=mimalloc,slitter,slitter-unchecked benches/compare.sh  # cost of the checks
#
# Steps:
#   1. installs what is missing with apt-get (needs root or sudo): gcc,
#      libjemalloc2, libmimalloc2.0, libtcmalloc-minimal4 (those selected),
#      python3 (when the python workload is selected);
#   2. builds slitter (cargo build --release, when selected), the
#      slitter-unchecked variant (cargo build --release --features
#      measure_without_checks into $CARGO_TARGET_DIR/unchecked, when
#      selected) and the workloads (-O2);
#   3. checks, for each allocator, that LD_PRELOAD really makes malloc, free,
#      calloc and realloc bind to it (benches/tools/malloc_probe.c), and fails
#      when one did not take over (for slitter: when libslitter.so does not
#      export the malloc family, its runs would silently measure glibc);
#   4. per workload: one warm-up run per allocator (which also repeats the
#      check of step 3 inside the workload process), then ROUNDS rounds, the
#      allocators in order in odd rounds and in reverse order in even ones
#      (A B C D E, E D C B A, ...). Every run is timed by benches/tools/
#      measure.c (wall time with CLOCK_MONOTONIC around fork/wait4, peak RSS
#      from wait4's ru_maxrss);
#   5. fails when a run exits non-zero or when its "checksum:" lines differ
#      from those of the first run of the same workload (under any
#      allocator, and for the server workload under any thread count);
#   6. unless COUNTS=0, runs once per allocator, outside the timed runs,
#      benches/tools/many_live.c (64 KiB blocks kept live until 200,000 or
#      malloc fails; /proc/self/maps lines at 20,000) and benches/tools/
#      fork_latency.c (median and max fork() latency over 50 forks while two
#      threads churn mixed sizes), each bounded by COUNTS_TIMEOUT seconds,
#      and benches/tools/after_peak.c once per scenario (AFTER_PEAK_SCENARIOS):
#      resident memory at a peak of small or large blocks, once they are
#      freed, after 1 s of light activity and after malloc_trim(0), and the
#      p99.9 latency of malloc and free while the peak is built and freed;
#   7. prints the tables, a summary and the counts; writes every run's output, the raw
#      measurements (runs.tsv), the tables (summary.txt), a markdown version
#      (table.md), the ratios (ratios-time.tsv, ratios-rss.tsv) and, with
#      two allocators or more, a chart of them (chart.svg, drawn by gnuplot,
#      from Debian's gnuplot-nox, installed when missing) and the counts
#      (counts.txt) to RESULTS_DIR.
#
# Environment:
#   ROUNDS           timed rounds per workload (default 5)
#   SCALE            small (0.1), default (1), large (4), or a number: the
#                    work each workload does (default: default)
#   WORKLOADS        subset, comma-separated (default: all of
#                    churn,trees,prodcons,server,strings,large,
#                    sparse_large,mixed_churn,python)
#   ALLOCATORS       subset, comma-separated, in run order (default:
#                    glibc,jemalloc,mimalloc,tcmalloc,slitter); also known,
#                    off by default: slitter-unchecked, slitter with its
#                    misuse checks compiled out (feature
#                    measure_without_checks), to measure what they cost,
#                    and slitter-hardened, slitter with SLITTER_HARDEN=1
#   REFERENCE        the allocator the ratios are computed for (default
#                    slitter, or mimalloc when slitter is not selected)
#   SERVER_THREADS   threads of the server workload in the table (default 2)
#   SCALING          1 (default) to run the server scaling check, 0 not to
#   SCALING_ALLOCATORS  allocators for the scaling check (default: all
#                    selected)
#   PYTHON           interpreter for the python workload (default
#                    /usr/bin/python3, else python3 from PATH)
#   PYTHON_MALLOC    PYTHONMALLOC for the python workload (default malloc:
#                    every object from the allocator under test; pymalloc
#                    for Python's default small-object arenas)
#   NOISE_LIMIT, NOISE_RETRIES, NOISE_MAX_RERUNS  a timed run during which
#                    other processes (or the hypervisor) kept more than
#                    NOISE_LIMIT of a CPU busy on average is run again, up
#                    to NOISE_RETRIES times, and up to NOISE_MAX_RERUNS
#                    times in all (defaults 0.1, 2 and 100, which bounds
#                    the extra time); the report gives the disturbance left
#   CHART            1 (default) to draw chart.svg, 0 not to
#   COUNTS           1 (default) to print the counts (many live blocks,
#                    fork latency, memory after a peak), 0 not to
#   COUNTS_TIMEOUT   seconds each count program may run (default 60)
#   AFTER_PEAK_SCENARIOS  after_peak scenarios of the counts, comma-
#                    separated, or none (default: all of small64,
#                    small64_cross,small16,longlived,large256k)
#   AFTER_PEAK_SCALE after_peak's --scale (default 1: 1 GiB peaks; the
#                    targets of docs/benchmarks.md are for scale 1)
#   RESULTS_DIR      where to write the results (default
#                    $CARGO_TARGET_DIR/bench-results/<date>-<time>)
#   CARGO_TARGET_DIR (default ./target), CC (default gcc)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=benches/common.sh
source "$root/benches/common.sh"
cd "$root"

# --- configuration -----------------------------------------------------------
all_workloads=(churn trees prodcons server strings large sparse_large mixed_churn python)
default_allocators=(glibc jemalloc mimalloc tcmalloc slitter)
# Variants of slitter, selectable with ALLOCATORS (off by default), for
# measuring what its safety costs: the misuse checks compiled out (cargo
# feature measure_without_checks, built into $CARGO_TARGET_DIR/unchecked),
# and the opt-in hardening on (SLITTER_HARDEN=1, same library as slitter).
all_allocators=("${default_allocators[@]}" slitter-unchecked slitter-hardened)

rounds="${ROUNDS:-5}"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$rounds'"

scale_name="${SCALE:-default}"
case "$scale_name" in
small) scale=0.1 ;;
default) scale=1 ;;
large) scale=4 ;;
*)
	if ! [[ "$scale_name" =~ ^([0-9]+([.][0-9]*)?|[.][0-9]+)$ ]] ||
		! awk -v s="$scale_name" 'BEGIN { exit !(s > 0 && s <= 1000) }'; then
		die "SCALE must be small, default, large or a number in (0, 1000], not '$scale_name'"
	fi
	scale="$scale_name"
	;;
esac

# split_list VAR VALUE: splits a comma- or space-separated list into array VAR.
split_list() {
	local -n into="$1"
	# shellcheck disable=SC2034 # a nameref: this assigns the caller's array
	IFS=', ' read -r -a into <<<"$2"
}

# contains VALUE ITEM...: whether VALUE is one of the ITEMs.
contains() {
	local value="$1" item
	shift
	for item in "$@"; do
		[[ "$item" == "$value" ]] && return 0
	done
	return 1
}

workloads=()
allocators=()
split_list workloads "${WORKLOADS:-${all_workloads[*]}}"
split_list allocators "${ALLOCATORS:-${default_allocators[*]}}"
((${#workloads[@]} > 0)) || die "WORKLOADS is empty"
((${#allocators[@]} > 0)) || die "ALLOCATORS is empty"
for w in "${workloads[@]}"; do
	contains "$w" "${all_workloads[@]}" || die "unknown workload '$w' (known: ${all_workloads[*]})"
done
for a in "${allocators[@]}"; do
	contains "$a" "${all_allocators[@]}" || die "unknown allocator '$a' (known: ${all_allocators[*]})"
done

if [[ -n "${REFERENCE:-}" ]]; then
	reference="$REFERENCE"
	contains "$reference" "${allocators[@]}" || die "REFERENCE=$reference is not in ALLOCATORS"
elif contains slitter "${allocators[@]}"; then
	reference=slitter
elif contains mimalloc "${allocators[@]}"; then
	reference=mimalloc
else
	reference="${allocators[0]}"
fi

server_threads="${SERVER_THREADS:-2}"
[[ "$server_threads" =~ ^[1-9][0-9]*$ ]] || die "SERVER_THREADS must be a positive integer"
scaling="${SCALING:-1}"
[[ "$scaling" == 0 || "$scaling" == 1 ]] || die "SCALING must be 0 or 1"
scaling_allocators=()
split_list scaling_allocators "${SCALING_ALLOCATORS:-${allocators[*]}}"
for a in "${scaling_allocators[@]}"; do
	contains "$a" "${allocators[@]}" || die "SCALING_ALLOCATORS: $a is not in ALLOCATORS"
done

python_malloc="${PYTHON_MALLOC:-malloc}"
noise_limit="${NOISE_LIMIT:-0.1}"
[[ "$noise_limit" =~ ^([0-9]+([.][0-9]*)?|[.][0-9]+)$ ]] ||
	die "NOISE_LIMIT must be a non-negative number, not '$noise_limit'"
noise_retries="${NOISE_RETRIES:-2}"
[[ "$noise_retries" =~ ^[0-9]+$ ]] || die "NOISE_RETRIES must be a non-negative integer"
noise_max_reruns="${NOISE_MAX_RERUNS:-100}"
[[ "$noise_max_reruns" =~ ^[0-9]+$ ]] || die "NOISE_MAX_RERUNS must be a non-negative integer"
chart="${CHART:-1}"
[[ "$chart" == 0 || "$chart" == 1 ]] || die "CHART must be 0 or 1"
counts="${COUNTS:-1}"
[[ "$counts" == 0 || "$counts" == 1 ]] || die "COUNTS must be 0 or 1"
counts_timeout="${COUNTS_TIMEOUT:-60}"
[[ "$counts_timeout" =~ ^[1-9][0-9]*$ ]] || die "COUNTS_TIMEOUT must be a positive integer"
all_after_peak_scenarios=(small64 small64_cross small16 longlived large256k)
after_peak_scenarios=()
if [[ "${AFTER_PEAK_SCENARIOS:-}" != none ]]; then
	split_list after_peak_scenarios "${AFTER_PEAK_SCENARIOS:-${all_after_peak_scenarios[*]}}"
fi
for s in "${after_peak_scenarios[@]}"; do
	contains "$s" "${all_after_peak_scenarios[@]}" ||
		die "unknown after_peak scenario '$s' (known: ${all_after_peak_scenarios[*]}, or none)"
done
after_peak_scale="${AFTER_PEAK_SCALE:-1}"
if ! [[ "$after_peak_scale" =~ ^([0-9]+([.][0-9]*)?|[.][0-9]+)$ ]] ||
	! awk -v s="$after_peak_scale" 'BEGIN { exit !(s > 0 && s <= 1000) }'; then
	die "AFTER_PEAK_SCALE must be a number in (0, 1000], not '$after_peak_scale'"
fi
cc="${CC:-gcc}"
results_dir="${RESULTS_DIR:-$target_dir/bench-results/$(date +%Y%m%d-%H%M%S)}"
bin_dir="$target_dir/bench-workloads"

if [[ -n "${LD_PRELOAD:-}" ]]; then
	log "compare.sh: note: ignoring LD_PRELOAD=$LD_PRELOAD from the environment"
	unset LD_PRELOAD
fi

# --- packages ----------------------------------------------------------------

declare -A package_of=(
	[jemalloc]=libjemalloc2
	[mimalloc]=libmimalloc2.0
	[tcmalloc]=libtcmalloc-minimal4
)
declare -A library_pattern=(
	[jemalloc]='/libjemalloc\.so\.2$'
	[mimalloc]='/libmimalloc\.so\.2(\.[0-9]+)*$'
	[tcmalloc]='/libtcmalloc_minimal\.so\.4(\.[0-9]+)*$'
)

packages=()
for a in "${allocators[@]}"; do
	if [[ -n "${package_of[$a]:-}" ]] && ! dpkg -s "${package_of[$a]}" >/dev/null 2>&1; then
		packages+=("${package_of[$a]}")
	fi
done
command -v "$cc" >/dev/null || packages+=(gcc libc6-dev)
if [[ "$chart" == 1 ]] && ((${#allocators[@]} > 1)) && ! command -v gnuplot >/dev/null; then
	packages+=(gnuplot-nox)
fi
if contains python "${workloads[@]}" && [[ -z "${PYTHON:-}" ]] &&
	[[ ! -x /usr/bin/python3 ]] && ! command -v python3 >/dev/null; then
	packages+=(python3)
fi
if ((${#packages[@]} > 0)); then
	log "== installing ${packages[*]}"
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${packages[@]}" >&2
fi
command -v "$cc" >/dev/null || die "no C compiler '$cc'"

# The library to LD_PRELOAD for each allocator (glibc: none).
declare -A preload=()
for a in "${allocators[@]}"; do
	case "$a" in
	glibc | slitter*) ;;
	*)
		pkg="${package_of[$a]}"
		dpkg -s "$pkg" >/dev/null 2>&1 || die "$a: package $pkg is not installed"
		lib="$(dpkg -L "$pkg" | grep -E "${library_pattern[$a]}" | sort | head -n 1 || true)"
		[[ -n "$lib" && -f "$lib" ]] ||
			die "$a: no shared library matching ${library_pattern[$a]} in package $pkg (dpkg -L $pkg)"
		preload[$a]="$lib"
		;;
	esac
done

# --- build -------------------------------------------------------------------
# build_slitter ALLOCATOR TARGET_DIR CARGO_ARGS...: builds libslitter.so
# into TARGET_DIR and makes it ALLOCATOR's preload.
build_slitter() {
	local a="$1" dir="$2"
	shift 2
	log "== $a: cargo build --release $* (target dir: $dir)"
	CARGO_TARGET_DIR="$dir" cargo build --release "$@" >&2
	preload[$a]="$dir/release/libslitter.so"
	[[ -f "${preload[$a]}" ]] || die "no ${preload[$a]} after the build"
}
if contains slitter "${allocators[@]}"; then
	build_slitter slitter "$target_dir"
fi
if contains slitter-unchecked "${allocators[@]}"; then
	build_slitter slitter-unchecked "$target_dir/unchecked" --features measure_without_checks
fi
if contains slitter-hardened "${allocators[@]}"; then
	build_slitter slitter-hardened "$target_dir"
fi

log "== compiling the workloads into $bin_dir"
mkdir -p "$bin_dir"
cflags=(-O2 -std=gnu11 -Wall -Wextra -Werror -pthread)
for w in "${all_workloads[@]}"; do
	[[ "$w" == python ]] && continue
	contains "$w" "${workloads[@]}" || [[ "$w" == server && "$scaling" == 1 ]] || continue
	"$cc" "${cflags[@]}" "benches/workloads/$w.c" -o "$bin_dir/$w" -ldl
done
"$cc" "${cflags[@]}" benches/tools/measure.c -o "$bin_dir/measure"
"$cc" "${cflags[@]}" benches/tools/malloc_probe.c -o "$bin_dir/malloc_probe" -ldl
if [[ "$counts" == 1 ]]; then
	"$cc" "${cflags[@]}" benches/tools/many_live.c -o "$bin_dir/many_live" -ldl
	"$cc" "${cflags[@]}" benches/tools/fork_latency.c -o "$bin_dir/fork_latency" -ldl
	"$cc" "${cflags[@]}" benches/tools/after_peak.c -o "$bin_dir/after_peak" -ldl
fi
measure="$bin_dir/measure"

python=""
if contains python "${workloads[@]}"; then
	if [[ -n "${PYTHON:-}" ]]; then
		python="$PYTHON"
	elif [[ -x /usr/bin/python3 ]]; then
		python=/usr/bin/python3
	else
		python="$(command -v python3)" || die "no python3"
	fi
	# The interpreter binary itself, not a wrapper script (pyenv shims are
	# bash scripts, which would run under the preloaded allocator too).
	python="$("$python" -c 'import sys; print(sys.executable)')" ||
		die "cannot run the python interpreter '$python'"
	[[ -x "$python" ]] || die "python interpreter '$python' is not executable"
fi

# --- the command of each workload --------------------------------------------
# workload_command WORKLOAD THREADS: sets array `command`.
command=()
workload_command() {
	case "$1" in
	python)
		command=(env "PYTHONMALLOC=$python_malloc" PYTHONHASHSEED=0
			"$python" "$root/benches/workloads/python_alloc.py" "$scale")
		;;
	server | mixed_churn) command=("$bin_dir/$1" "$scale" "$2") ;;
	*) command=("$bin_dir/$1" "$scale") ;;
	esac
}

# --- the probe ---------------------------------------------------------------
# check_probe ALLOCATOR FILE: checks the "probe:" line in FILE shows that
# malloc, free, calloc and realloc all bind to ALLOCATOR's library.
check_probe() {
	local a="$1" file="$2" line field name object want
	if grep -q 'ld\.so: object .* cannot be preloaded' "$file"; then
		grep 'ld\.so' "$file" >&2
		die "$a: the dynamic loader could not preload ${preload[$a]:-}"
	fi
	line="$(grep -m 1 '^probe:' "$file" || true)"
	[[ -n "$line" ]] || die "$a: no probe line in $file"
	for field in ${line#probe:}; do
		name="${field%%=*}"
		object="${field#*=}"
		if [[ "$a" == glibc ]]; then
			[[ "$(basename "$object")" == libc.so* ]] && continue
			want="glibc's libc.so.6"
		else
			[[ "$object" != "?" && "$(realpath "$object")" == "$(realpath "${preload[$a]}")" ]] &&
				continue
			want="${preload[$a]}"
		fi
		if [[ "$a" == slitter* ]]; then
			local exports=""
			if command -v nm >/dev/null; then
				exports="$(nm -D --defined-only "${preload[$a]}" 2>/dev/null |
					awk '$3 ~ /^(malloc|free|calloc|realloc)$/ { printf " %s", $3 }')"
				exports="; libslitter.so exports:${exports:- none of malloc, free, calloc, realloc}"
			fi
			die "$a did not take over malloc: under LD_PRELOAD=${preload[$a]}," \
				"$name binds to $object$exports. Its runs would measure glibc, not slitter." \
				"Until libslitter.so exports the malloc family, run with" \
				"ALLOCATORS=glibc,jemalloc,mimalloc,tcmalloc."
		fi
		die "$a did not take over: $name binds to $object, not $want ($line)"
	done
}

mkdir -p "$results_dir/runs"
log "== results in $results_dir"
log "== checking that each allocator takes over malloc"
for a in "${allocators[@]}"; do
	out="$results_dir/runs/probe.$a.txt"
	if [[ -n "${preload[$a]:-}" ]]; then
		"$measure" -p "${preload[$a]}" -o /dev/null -- "$bin_dir/malloc_probe" >"$out" 2>&1 ||
			{
				cat "$out" >&2
				die "$a: the probe failed under LD_PRELOAD=${preload[$a]}"
			}
	else
		"$measure" -o /dev/null -- "$bin_dir/malloc_probe" >"$out" 2>&1 ||
			{
				cat "$out" >&2
				die "$a: the probe failed"
			}
	fi
	check_probe "$a" "$out"
	log "   $a: $(grep -m 1 '^probe:' "$out" | awk '{ print $2 }') (${preload[$a]:-no LD_PRELOAD})"
done

# --- running -----------------------------------------------------------------
declare -A reference_checksums=()
declare -A reference_run=()
raw="$results_dir/runs.tsv"
printf 'workload\tallocator\tthreads\tround\twall_s\tmaxrss_kib\tuser_s\tsys_s\tother_cpu_s\tthroughput\n' >"$raw"

# run WORKLOAD ALLOCATOR THREADS ROUND: one measured run; ROUND "warmup"
# turns the probe on. A timed run during which other processes took more
# than NOISE_LIMIT of a CPU is run again, up to NOISE_RETRIES times.
# Appends a row to runs.tsv and sets last_wall.
last_wall=""
reruns=0
run() {
	local w="$1" a="$2" threads="$3" round="$4"
	local base="$results_dir/runs/$w.$a.t$threads.$round"
	local -a envs=() pre=()
	[[ "$round" != warmup ]] || envs=(WORKLOAD_PROBE=1)
	[[ "$a" != slitter-hardened ]] || envs+=(SLITTER_HARDEN=1)
	[[ -z "${preload[$a]:-}" ]] || pre=(-p "${preload[$a]}")
	workload_command "$w" "$threads"
	local attempt wall rss user sys other
	for ((attempt = 0; ; attempt++)); do
		local status=0
		env "${envs[@]}" "$measure" "${pre[@]}" -o "$base.res" -- "${command[@]}" \
			</dev/null >"$base.out" 2>"$base.err" || status=$?
		if ((status != 0)); then
			tail -n 20 "$base.err" >&2
			die "$w under $a ($threads threads, $round) exited with status $status; see $base.err"
		fi
		if grep -q 'ld\.so:' "$base.err"; then
			cat "$base.err" >&2
			die "$w under $a: the dynamic loader complained; see $base.err"
		fi
		[[ "$round" != warmup ]] || check_probe "$a" "$base.err"
		local sums
		sums="$(grep '^checksum' "$base.out" || true)"
		[[ -n "$sums" ]] || die "$w under $a printed no checksum; see $base.out"
		if [[ -z "${reference_checksums[$w]:-}" ]]; then
			reference_checksums[$w]="$sums"
			reference_run[$w]="$base.out"
		elif [[ "$sums" != "${reference_checksums[$w]}" ]]; then
			die "checksum mismatch for $w: $base.out has '$sums'," \
				"${reference_run[$w]} has '${reference_checksums[$w]}'"
		fi
		read -r wall rss user sys other <"$base.res"
		[[ "$round" != warmup ]] || break
		((attempt < noise_retries && reruns < noise_max_reruns)) || break
		awk -v o="$other" -v w="$wall" -v l="$noise_limit" 'BEGIN { exit !(o > l * w) }' ||
			break
		log "   (other processes took $(awk -v o="$other" -v w="$wall" \
			'BEGIN { printf "%.0f%%", 100 * o / w }') of a CPU during $w under $a, round $round: running it again)"
		reruns=$((reruns + 1))
	done
	local throughput
	throughput="$(awk '/^throughput:/ { print $2; exit }' "$base.out")"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$a" "$threads" "$round" \
		"$wall" "$rss" "$user" "$sys" "$other" "${throughput:--}" >>"$raw"
	last_wall="$(printf '%.3f' "$wall")"
}

# order ROUND ITEM...: the items forward in odd rounds, reversed in even ones.
order() {
	local round="$1"
	shift
	local -a items=("$@")
	if ((round % 2 == 1)); then
		printf '%s\n' "${items[@]}"
	else
		local i
		for ((i = ${#items[@]} - 1; i >= 0; i--)); do
			printf '%s\n' "${items[i]}"
		done
	fi
}

start_time="$(date +%s)"
for w in "${workloads[@]}"; do
	threads=1
	[[ "$w" != server ]] || threads="$server_threads"
	[[ "$w" != mixed_churn ]] || threads=2
	line="== $w: warm-up"
	for a in "${allocators[@]}"; do
		run "$w" "$a" "$threads" warmup
		line+=" $a ${last_wall}s"
	done
	log "$line"
	for ((r = 1; r <= rounds; r++)); do
		line="   round $r/$rounds:"
		while read -r a; do
			run "$w" "$a" "$threads" "$r"
			line+=" $a ${last_wall}s"
		done < <(order "$r" "${allocators[@]}")
		log "$line"
	done
done

if [[ "$scaling" == 1 ]]; then
	log "== server scaling: 1 thread vs 2 threads"
	if ! contains server "${workloads[@]}"; then
		for a in "${scaling_allocators[@]}"; do
			run server "$a" 1 warmup
			run server "$a" 2 warmup
		done
	fi
	for ((r = 1; r <= rounds; r++)); do
		line="   round $r/$rounds:"
		while read -r a; do
			for t in $(order "$r" 1 2); do
				run server "$a" "$t" "scaling$r"
				line+=" $a/${t}t ${last_wall}s"
			done
		done < <(order "$r" "${scaling_allocators[@]}")
		log "$line"
	done
fi
elapsed=$(($(date +%s) - start_time))

# --- counts (not timings) ----------------------------------------------------
# count_run ALLOCATOR PROGRAM [ARG...]: runs benches/tools/PROGRAM once
# (with the ARGs) under ALLOCATOR (probe checked), bounded by
# COUNTS_TIMEOUT; its stdout is in runs/count.PROGRAM.ALLOCATOR.out, or
# runs/count.PROGRAM.ARG.ALLOCATOR.out with ARGs (ARG: the first one).
# Returns non-zero when it failed.
count_run() {
	local a="$1" prog="$2" status=0
	shift 2
	local base="$results_dir/runs/count.$prog${1:+.$1}.$a"
	local -a envs=(WORKLOAD_PROBE=1) pre=()
	[[ "$a" != slitter-hardened ]] || envs+=(SLITTER_HARDEN=1)
	[[ -z "${preload[$a]:-}" ]] || pre=(-p "${preload[$a]}")
	env "${envs[@]}" timeout "$counts_timeout" "$measure" "${pre[@]}" -o "$base.res" -- \
		"$bin_dir/$prog" "$@" </dev/null >"$base.out" 2>"$base.err" || status=$?
	if ((status != 0)); then
		log "   $prog${1:+ $1} under $a failed (status $status$( ((status != 124)) || printf ', timed out after %s s' "$counts_timeout")); see $base.err"
		return 1
	fi
	check_probe "$a" "$base.err"
}

rm -f "$results_dir/after_peak.tsv" # of an earlier run in the same RESULTS_DIR
if [[ "$counts" == 1 ]]; then
	log "== counts: many live 64 KiB blocks, fork latency under load"
	{
		printf '\nCounts (one run each, not timings): 64 KiB blocks live at once (of 200000) and /proc/self/maps lines at 20000 live; fork() latency while 2 threads churn mixed sizes (50 forks)\n\n'
		printf '%-18s %12s %16s %16s %14s\n' allocator "live blocks" "maps at 20000" "fork median us" "fork max us"
	} >"$results_dir/counts.txt"
	for a in "${allocators[@]}"; do
		live="failed" maps="-" median="failed" max="-"
		if count_run "$a" many_live; then
			live="$(awk '/^live:/ { print $2; exit }' "$results_dir/runs/count.many_live.$a.out")"
			maps="$(awk '/^maps_lines_at_/ { print $2; exit }' "$results_dir/runs/count.many_live.$a.out")"
		fi
		if count_run "$a" fork_latency; then
			median="$(awk '/^fork_us:/ { print $3; exit }' "$results_dir/runs/count.fork_latency.$a.out")"
			max="$(awk '/^fork_us:/ { print $5; exit }' "$results_dir/runs/count.fork_latency.$a.out")"
		fi
		printf '%-18s %12s %16s %16s %14s\n' "$a" "$live" "$maps" "$median" "$max" \
			>>"$results_dir/counts.txt"
		log "   $a: live $live, maps lines $maps, fork median ${median} us, max ${max} us"
	done
fi

# The after_peak scenarios: one row per allocator and scenario, in
# counts.txt after the table above, and in after_peak.tsv (for table.md).
if [[ "$counts" == 1 ]] && ((${#after_peak_scenarios[@]} > 0)); then
	log "== counts: memory after a peak (after_peak ${after_peak_scenarios[*]}, scale $after_peak_scale)"
	ap_tsv="$results_dir/after_peak.tsv"
	printf 'allocator\tscenario\tpeak_mib\tfreed_mib\tafter_1s_mib\ttrimmed_mib\tmalloc_p999_ns\tfree_p999_ns\tlazyfree_after_1s_mib\n' \
		>"$ap_tsv"
	{
		printf '\nMemory after a peak (after_peak, one run each, scale %s): resident MiB at the peak, once it is freed, after 1 s of light activity, after malloc_trim(0) (-1: the allocator has none); p99.9 latency of malloc and free while the peak is built and freed (timed calls, one run: indicative); lazy-free: MiB of the after-1-s figure given back with MADV_FREE (resident until the kernel needs memory)\n\n' \
			"$after_peak_scale"
		printf '%-18s %-14s %9s %10s %10s %8s %16s %14s %10s\n' allocator scenario "peak MiB" \
			"freed MiB" "after 1 s" trimmed "malloc p99.9 ns" "free p99.9 ns" "lazy-free"
	} >>"$results_dir/counts.txt"
	for a in "${allocators[@]}"; do
		for s in "${after_peak_scenarios[@]}"; do
			fields=(failed - - - - - -)
			if count_run "$a" after_peak "$s" --scale "$after_peak_scale"; then
				out="$results_dir/runs/count.after_peak.$s.$a.out"
				read -r -a fields < <(awk '
					/^resident_mib:/ { peak = $3; freed = $5; after = $7; trimmed = $9 }
					/^p999_ns:/ { m = $3; f = $5 }
					/^lazyfree_mib:/ { lazy = $7 }
					END { print peak, freed, after, trimmed, m, f, (lazy == "" ? "-" : lazy) }' "$out")
				((${#fields[@]} == 7)) || {
					log "   after_peak $s under $a: no figures in $out"
					fields=(failed - - - - - -)
				}
			fi
			printf '%-18s %-14s %9s %10s %10s %8s %16s %14s %10s\n' "$a" "$s" "${fields[@]}" \
				>>"$results_dir/counts.txt"
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$a" "$s" "${fields[@]}" >>"$ap_tsv"
			log "   $a $s: resident MiB peak ${fields[0]}, freed ${fields[1]}, after 1 s ${fields[2]}, trimmed ${fields[3]}; p99.9 malloc ${fields[4]} ns, free ${fields[5]} ns"
		done
	done
fi

# --- report ------------------------------------------------------------------
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain 2>/dev/null || true)" ]]; then
	commit+=" (with uncommitted changes)"
fi
versions=""
for a in "${allocators[@]}"; do
	case "$a" in
	glibc) versions+=" glibc $(ldd --version | awk 'NR == 1 { print $NF }');" ;;
	slitter) versions+=" slitter $commit;" ;;
	slitter-unchecked) versions+=" slitter-unchecked $commit (feature measure_without_checks);" ;;
	slitter-hardened) versions+=" slitter-hardened $commit (SLITTER_HARDEN=1);" ;;
	*) versions+=" $a $(dpkg-query -W -f '${Version}' "${package_of[$a]}");" ;;
	esac
done

{
	printf 'Machine: %s, %s CPUs, %s GiB RAM, Linux %s\n' \
		"$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" "$(nproc)" \
		"$(awk '/^MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)" "$(uname -r)"
	printf 'Versions:%s\n' "${versions%;}"
	printf 'Scale %s (%s), median of %s round(s) after a warm-up, server with %s threads%s\n' \
		"$scale" "$scale_name" "$rounds" "$server_threads" \
		"$([[ "$python_malloc" == malloc ]] || printf ', PYTHONMALLOC=%s' "$python_malloc")"
	printf 'Run took %d s\n' "$elapsed"
	awk -F '\t' -v reruns="$reruns" -v limit="$noise_limit" '
		NR > 1 && $4 != "warmup" && $9 >= 0 {
			wall += $5; other += $9; n++
			if ($5 > 0 && $9 / $5 > worst) { worst = $9 / $5; where = $1 " under " $2 ", round " $4 }
			if ($5 > 0 && $9 / $5 > limit) noisy++
		}
		END {
			if (n == 0 || wall == 0) exit
			printf "Disturbance: other processes kept %.0f%% of a CPU busy on average during the timed runs", 100 * other / wall
			printf " (worst run %.0f%%, %s); %d run(s) re-run, %d timed run(s) still above %.0f%%\n",
				100 * worst, where, reruns, noisy, 100 * limit
		}' "$raw"
	printf '\n'
} >"$results_dir/header.txt"

# The tables, from runs.tsv: medians, ratios to the reference, geometric
# means. FORMAT=text or md.
report() {
	awk -F '\t' -v format="$1" -v ref="$reference" -v allocs="${allocators[*]}" \
		-v ratios_time="$results_dir/ratios-time.tsv" -v ratios_rss="$results_dir/ratios-rss.tsv" \
		-v works="${workloads[*]}" -v server_threads="$server_threads" \
		-v scaling="$scaling" -v scaling_allocs="${scaling_allocators[*]}" '
	function median(key,    n, i, j, t, v) {
		n = count[key]
		if (n == 0) return -1
		for (i = 1; i <= n; i++) v[i] = vals[key, i]
		for (i = 2; i <= n; i++) {
			t = v[i]
			for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]
			v[j + 1] = t
		}
		return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
	}
	function row(cells, widths,    i, s) {
		if (format == "md") {
			s = "|"
			for (i = 1; i <= cells[0]; i++) s = s " " cells[i] " |"
			print s
		} else {
			s = sprintf("%-" widths[1] "s", cells[1])
			for (i = 2; i <= cells[0]; i++) s = s sprintf(" %" widths[i] "s", cells[i])
			print s
		}
	}
	function rule(cells,    i, s) {
		if (format != "md") return
		s = "|"
		for (i = 1; i <= cells[0]; i++) s = s (i == 1 ? " --- |" : " ---: |")
		print s
	}
	function title(text) {
		if (format == "md") printf "\n**%s**\n\n", text
		else printf "\n%s\n\n", text
	}
	NR > 1 && $4 != "warmup" {
		if ($4 ~ /^scaling/) {
			key = "tp" SUBSEP $2 SUBSEP $3
			vals[key, ++count[key]] = $10
			next
		}
		key = "wall" SUBSEP $1 SUBSEP $2
		vals[key, ++count[key]] = $5
		key = "rss" SUBSEP $1 SUBSEP $2
		vals[key, ++count[key]] = $6 / 1024
	}
	END {
		na = split(allocs, A, " ")
		nw = split(works, W, " ")
		ns = split(scaling_allocs, S, " ")

		title("Median wall time (s) and peak RSS (MiB)")
		c[0] = 1 + 2 * na; c[1] = "workload"; width[1] = 16
		for (i = 1; i <= na; i++) {
			c[2 * i] = A[i] " s"; c[2 * i + 1] = A[i] " MiB"
			width[2 * i] = length(A[i]) + 2 > 7 ? length(A[i]) + 2 : 7
			width[2 * i + 1] = length(A[i]) + 4 > 8 ? length(A[i]) + 4 : 8
		}
		row(c, width); rule(c)
		for (k = 1; k <= nw; k++) {
			w = W[k]; d[0] = c[0]
			d[1] = (w == "server" ? w " (" server_threads "t)" : w == "mixed_churn" ? w " (2t)" : w)
			for (i = 1; i <= na; i++) {
				wall[w, A[i]] = median("wall" SUBSEP w SUBSEP A[i])
				rss[w, A[i]] = median("rss" SUBSEP w SUBSEP A[i])
				d[2 * i] = sprintf("%.3f", wall[w, A[i]])
				d[2 * i + 1] = sprintf("%.1f", rss[w, A[i]])
				# spread of the rounds, to judge the noise
				key = "wall" SUBSEP w SUBSEP A[i]
				lo = hi = vals[key, 1]
				for (j = 2; j <= count[key]; j++) {
					if (vals[key, j] < lo) lo = vals[key, j]
					if (vals[key, j] > hi) hi = vals[key, j]
				}
				spread = wall[w, A[i]] > 0 ? (hi - lo) / wall[w, A[i]] : 0
				if (spread > worst_spread) {
					worst_spread = spread; worst_where = w " under " A[i]
				}
			}
			row(d, width)
		}
		if (worst_spread > 0)
			printf "\nLargest spread of the rounds: (max - min) / median = %.0f%% (%s)\n",
				100 * worst_spread, worst_where

		if (na > 1) {
			title(ref " / each other allocator (time, peak RSS): below 1 means " ref " is faster / smaller")
			delete c; delete width
			c[0] = 1; c[1] = "workload"; width[1] = 12
			for (i = 1; i <= na; i++) {
				if (A[i] == ref) continue
				c[++c[0]] = "/" A[i] " time"; width[c[0]] = length(A[i]) + 6
				c[++c[0]] = "/" A[i] " RSS"; width[c[0]] = length(A[i]) + 5
			}
			row(c, width); rule(c)
			# The same ratios, one row per workload, one column per other
			# allocator, for the chart.
			theader = "workload"
			for (i = 1; i <= na; i++) if (A[i] != ref) theader = theader "\t" ref " / " A[i]
			if (format != "md") {
				print theader > ratios_time; print theader > ratios_rss
			}
			for (k = 1; k <= nw; k++) {
				w = W[k]; delete d; d[0] = 1; d[1] = w
				tline = w; mline = w
				for (i = 1; i <= na; i++) {
					a = A[i]
					if (a == ref) continue
					tr = wall[w, ref] / wall[w, a]; mr = rss[w, ref] / rss[w, a]
					d[++d[0]] = sprintf("%.2f", tr); d[++d[0]] = sprintf("%.2f", mr)
					tline = tline sprintf("\t%.4f", tr); mline = mline sprintf("\t%.4f", mr)
					logt[a] += log(tr); logm[a] += log(mr)
					if (tr > maxt[a]) { maxt[a] = tr; maxw[a] = w }
				}
				row(d, width)
				if (format != "md") { print tline > ratios_time; print mline > ratios_rss }
			}
			delete d; d[0] = 1; d[1] = "geomean"; tline = "geomean"; mline = "geomean"
			for (i = 1; i <= na; i++) {
				a = A[i]
				if (a == ref) continue
				gt[a] = exp(logt[a] / nw); gm[a] = exp(logm[a] / nw)
				d[++d[0]] = sprintf("%.2f", gt[a]); d[++d[0]] = sprintf("%.2f", gm[a])
				tline = tline sprintf("\t%.4f", gt[a]); mline = mline sprintf("\t%.4f", gm[a])
			}
			row(d, width)
			if (format != "md") { print tline > ratios_time; print mline > ratios_rss }
			s = ""
			for (i = 1; i <= na; i++) {
				a = A[i]
				if (a == ref) continue
				s = s sprintf("%s /%s %.2f (%s)", s == "" ? "" : ",", a, maxt[a], maxw[a])
			}
			printf "\nWorst workload (highest time ratio):%s\n", s
		}

		if (scaling == 1) {
			title("Server scaling: median throughput (requests/s), same total work")
			delete c; delete width
			c[0] = 4; c[1] = "allocator"; c[2] = "1 thread"; c[3] = "2 threads"; c[4] = "2t / 1t"
			width[1] = 10; width[2] = 12; width[3] = 12; width[4] = 8
			for (i = 1; i <= ns; i++) if (length(S[i]) > width[1]) width[1] = length(S[i])
			row(c, width); rule(c)
			for (i = 1; i <= ns; i++) {
				a = S[i]
				t1 = median("tp" SUBSEP a SUBSEP 1); t2 = median("tp" SUBSEP a SUBSEP 2)
				scal[a] = t1 > 0 ? t2 / t1 : 0
				delete d; d[0] = 4; d[1] = a
				d[2] = sprintf("%.0f", t1); d[3] = sprintf("%.0f", t2)
				d[4] = sprintf("%.2f", scal[a])
				row(d, width)
			}
		}

		if (na > 1) {
			title("Summary")
			for (i = 1; i <= na; i++) {
				a = A[i]
				if (a == ref) continue
				printf "%s%s took %.2f times the time of %s and used %.2f times its peak RSS (geometric means over %d workload(s)); its highest time ratio: %.2f, %s.\n",
					(format == "md" ? "- " : ""), ref, gt[a], a, gm[a], nw, maxt[a], maxw[a]
			}
			if (scaling == 1 && (ref in scal))
				printf "%sThe server workload under %s ran %.2f times as fast on 2 threads as on 1 (perfect scaling on 2 cores: 2.00).\n",
					(format == "md" ? "- " : ""), ref, scal[ref]
		}
	}' "$raw"
}

{
	cat "$results_dir/header.txt"
	report text
} >"$results_dir/summary.txt"
{
	sed -e 's/^\(.\)/- \1/' "$results_dir/header.txt"
	report md
	if [[ "$counts" == 1 ]]; then
		printf '\n**Counts** (one run each, not timings)\n\n'
		awk 'NR > 4 && NF == 0 { exit }
		NR > 4 {
			if (!done) {
				print "| allocator | live 64 KiB blocks (of 200000) | /proc/self/maps lines at 20000 | fork median (us) | fork max (us) |"
				print "| --- | ---: | ---: | ---: | ---: |"
				done = 1
			}
			printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5
		}' "$results_dir/counts.txt"
		if ((${#after_peak_scenarios[@]} > 0)) && [[ -s "$results_dir/after_peak.tsv" ]]; then
			printf '\n**Memory after a peak** (after_peak, one run each, scale %s; resident MiB; trimmed -1: no malloc_trim; lazy-free: MiB of the after-1-s figure given back with MADV_FREE)\n\n' \
				"$after_peak_scale"
			awk -F '\t' 'NR == 1 {
				print "| allocator | scenario | peak MiB | freed MiB | after 1 s | trimmed | malloc p99.9 ns | free p99.9 ns | lazy-free after 1 s |"
				print "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
				next
			}
			{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }' \
				"$results_dir/after_peak.tsv"
		fi
	fi
} >"$results_dir/table.md"

# chart_panel FILE LABEL: the gnuplot commands of one panel: a bar per
# workload and other allocator, from FILE (ratios-time.tsv or
# ratios-rss.tsv).
chart_panel() {
	local columns
	columns="$(awk -F '\t' 'NR == 1 { print NF; exit }' "$1")"
	cat <<EOF
set ylabel "$2"
plot for [i=2:$columns] "$1" using i:xtic(1) title columnheader(i)
EOF
}

# Draws the ratios to the reference as chart.svg: time above, peak RSS
# below, with a dashed line at 1.
draw_chart() {
	local svg="$results_dir/chart.svg"
	command -v gnuplot >/dev/null || die "no gnuplot to draw the chart (install gnuplot-nox, or CHART=0)"
	{
		cat <<EOF
set terminal svg size 1000,760 dynamic enhanced font "sans,12" background "white"
set output "$svg"
set datafile separator "\t"
set multiplot layout 2,1 title "$reference / each other allocator, per workload: below 1, $reference is faster (top) or smaller (bottom)\nscale $scale_name, median of $rounds round(s)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top
set grid ytics
set yrange [0:*]
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 linewidth 1.5
EOF
		chart_panel "$results_dir/ratios-time.tsv" "wall time ratio"
		chart_panel "$results_dir/ratios-rss.tsv" "peak RSS ratio"
		printf 'unset multiplot\n'
	} >"$results_dir/chart.gp"
	gnuplot "$results_dir/chart.gp" || die "gnuplot failed on $results_dir/chart.gp"
	log "== chart: $svg"
}
if [[ "$chart" == 1 && -s "$results_dir/ratios-time.tsv" ]]; then
	draw_chart
fi

printf '\n'
cat "$results_dir/summary.txt"
[[ "$counts" != 1 ]] || cat "$results_dir/counts.txt"
printf '\n(raw runs: %s; markdown: %s' "$raw" "$results_dir/table.md"
[[ ! -f "$results_dir/chart.svg" ]] || printf '; chart: %s' "$results_dir/chart.svg"
printf ')\n'
