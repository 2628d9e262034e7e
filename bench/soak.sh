#!/usr/bin/env bash
# Load-and-swap soak: tests/it/reliability_soak.rs in release mode (hundreds of keep-alive HTTPS
# connections while the sync switches generations every second), with the machine's facts.
# The run's output goes to bench/out/soak.log (gitignored).
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/soak.sh [--connections N] [--secs S]

  --connections N   keep-alive HTTPS connections (default 200; PI_FAILOVER_SOAK_CONNECTIONS)
  --secs S          seconds of the swapping phase (default 60; PI_FAILOVER_SOAK_SECS); the
                    phase without swaps lasts a third of it, at least 5 s

Runs `cargo test --release --features soak-tests --test it reliability_soak:: -- --nocapture`
(the first release build of the tests takes several minutes) and prints the figures: requests
per second without and with generation switches, their ratio, and the error counts (all zero,
or the test fails).
EOF
}

CONNECTIONS=${PI_FAILOVER_SOAK_CONNECTIONS:-200}
SECS=${PI_FAILOVER_SOAK_SECS:-60}
while (($# > 0)); do
	case $1 in
	--connections) CONNECTIONS=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
	--connections=*) CONNECTIONS=${1#*=}; shift ;;
	--secs) SECS=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
	--secs=*) SECS=${1#*=}; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "soak.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
	esac
done
for n in "$CONNECTIONS" "$SECS"; do
	if ! [[ $n =~ ^[0-9]+$ ]] || ((n == 0)); then
		echo "soak.sh: not a positive whole number: '$n'" >&2
		exit 2
	fi
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
OUT=$HERE/out
LOG=$OUT/soak.log
mkdir -p "$OUT"
cd "$REPO"

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
{
	echo "soak: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs (${cpu_model:-unknown model}), $(uname -sr)"
	echo "soak: $CONNECTIONS connections, $SECS s of generation switches, load average $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$LOG"

status=0
PI_FAILOVER_SOAK_CONNECTIONS=$CONNECTIONS PI_FAILOVER_SOAK_SECS=$SECS \
	cargo test --release --features soak-tests --test it reliability_soak:: -- --nocapture \
	>>"$LOG" 2>&1 || status=$?

echo
grep '^soak:' "$LOG" || true
if ((status != 0)); then
	echo "soak.sh: the soak failed (exit $status); the whole output is in $LOG" >&2
	exit "$status"
fi
echo "soak.sh: passed; the whole output is in $LOG"
