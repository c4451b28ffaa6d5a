# shellcheck shell=bash
# Shell helpers shared by the benchmark scripts (sourced, not run).
# Expects `root` (the repository root) to be set by the caller; defines `target_dir`
# (CARGO_TARGET_DIR made absolute, default target/), and `log`, `die` and
# `as_root`. `die` prefixes its message with the sourcing script's name.

: "${root:?set root before sourcing benches/common.sh}"
target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in
/*) ;;
*) target_dir="$root/$target_dir" ;;
esac

log() { printf '%s\n' "$*" >&2; }
die() {
	log "$(basename "$0"): error: $*"
	exit 1
}

# Runs a command as root: directly, or through sudo.
as_root() {
	if [[ "$(id -u)" -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		die "need root (or sudo) to run: $*"
	fi
}
