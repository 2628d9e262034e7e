#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: fuzz/run.sh [SECONDS_PER_TARGET] (default 30).
#
# Each target starts from its committed seeds (fuzz/seeds/<target>/, read only) and the corpus
# it grew before (fuzz/corpus/<target>/, ignored by git, created when missing). A crash is
# written by libFuzzer under fuzz/artifacts/<target>/; this script names the file and the
# command that replays it, runs the remaining targets, and exits non-zero at the end.
# Needs the nightly toolchain and cargo-fuzz; without them it fails, it never skips.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: fuzz/run.sh [SECONDS_PER_TARGET]  (a whole number of seconds, default 30)" >&2
  exit 2
fi

die() {
  printf '\n!!! %s\n' "$*" >&2
  exit 1
}
cargo +nightly --version >/dev/null 2>&1 ||
  die "the nightly toolchain is missing: rustup toolchain install nightly --profile minimal"
cargo +nightly fuzz --version >/dev/null 2>&1 ||
  die "cargo-fuzz is missing: cargo install cargo-fuzz --locked"

echo "==> building the fuzz targets (nightly, libFuzzer, AddressSanitizer)"
cargo +nightly fuzz build
mapfile -t targets < <(cargo +nightly fuzz list)
[ ${#targets[@]} -gt 0 ] || die "cargo fuzz list found no targets"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=()
summary=()
for target in "${targets[@]}"; do
  corpus=fuzz/corpus/$target
  seeds=fuzz/seeds/$target
  artifacts=fuzz/artifacts/$target
  [ -d "$seeds" ] || die "no seeds for $target: add a few inputs under $seeds/"
  mkdir -p "$corpus" "$artifacts"
  before=$(find "$artifacts" -type f | sort)
  echo "==> $target for ${seconds}s (seeds: $seeds, corpus: $corpus)"
  # libFuzzer adds new inputs to the first directory only, so the seeds stay as committed.
  # -timeout: one input taking 10 s is a hang worth a report, not a slow run.
  status=0
  # libFuzzer prints a line per new input: kept in the log, shown when the target fails (or
  # always with FUZZ_VERBOSE=1), so a CI log shows the summary rather than thousands of lines.
  if [ -n "${FUZZ_VERBOSE:-}" ]; then
    cargo +nightly fuzz run "$target" "$corpus" "$seeds" -- \
      -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
      2>&1 | tee "$logs/$target.log" || status=$?
  else
    cargo +nightly fuzz run "$target" "$corpus" "$seeds" -- \
      -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
      >"$logs/$target.log" 2>&1 || status=$?
    [ "$status" -eq 0 ] || tail -n 60 "$logs/$target.log" >&2
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$target.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$target.log" | tail -1)
  units=$(find "$corpus" -type f | wc -l)
  if [ "$status" -ne 0 ]; then
    failed+=("$target")
    summary+=("$(printf '%-14s FAILED (exit %s)' "$target" "$status")")
    new=$(comm -13 <(printf '%s\n' "$before") <(find "$artifacts" -type f | sort) | sed '/^$/d')
    printf '\n!!! %s failed. Crash artifact(s):\n' "$target" >&2
    if [ -n "$new" ]; then
      while IFS= read -r artifact; do
        printf '!!!   %s\n!!!   replay: cargo +nightly fuzz run %s %s\n' \
          "$artifact" "$target" "$artifact" >&2
      done <<<"$new"
    else
      printf '!!!   none written (a build or setup failure; see the output above)\n' >&2
    fi
  else
    summary+=("$(printf '%-14s %12s execs  %8s exec/s  %6s corpus files' \
      "$target" "${runs:-?}" "${rate:-?}" "$units")")
  fi
done

printf '\n==> fuzz summary (%ss per target, %s)\n' "$seconds" "$(date -u +%Y-%m-%dT%H:%MZ)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  die "fuzz targets failed: ${failed[*]} (docs/fuzzing.md: turning a crash into a regression test)"
fi
