#!/usr/bin/env bash
# Runs every cargo-fuzz target of the repository for N seconds each (default 10).
#
#   fuzz/run-all.sh [N]
#
# Each fuzz crate sits beside its parser (`<crate>/fuzz`, its own workspace). Needs cargo-fuzz
# (`cargo install cargo-fuzz --locked`); on the stable toolchain RUSTC_BOOTSTRAP=1 lets it pass
# the nightly sanitizer flags. New corpus entries go to $FUZZ_WORK/<target> (default
# /tmp/gridchain-fuzz), so the committed seeds in <crate>/fuzz/corpus/<target> stay as they
# are; a crash is written to <crate>/fuzz/artifacts/<target>/ and fails the script.
#
# Limits: -rss_limit_mb=2048 and -malloc_limit_mb=512 (one allocation of 512 MiB or more is a
# failure: no parser may allocate in proportion to a length it read rather than bytes it got).
# Set FUZZ_TARGETS="resp manifest" to run only some targets.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
work="${FUZZ_WORK:-/tmp/gridchain-fuzz}"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/.cache/fuzz-target}"

# crate directory and its targets
fuzz_crates=(
  "runtime extrinsic block gossip_batch"
  "node/consensus wire"
  "node/sync response"
  "zdb resp"
  "wallet deployment"
  "zstor manifest shards"
  "zos-agent/owner-api frames"
)

failed=()
for entry in "${fuzz_crates[@]}"; do
  read -r dir targets <<<"$entry"
  for target in $targets; do
    if [ -n "${FUZZ_TARGETS:-}" ] && [[ " $FUZZ_TARGETS " != *" $target "* ]]; then
      continue
    fi
    mkdir -p "$work/$target"
    echo "=== $dir/fuzz: $target (${seconds}s)"
    log="$work/$target.log"
    if (cd "$dir/fuzz" && cargo fuzz run -O "$target" "$work/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1) \
      >"$log" 2>&1; then
      grep -E "^#[0-9]+[[:space:]]+DONE|^Done " "$log" || true
    else
      tail -n 40 "$log"
      failed+=("$dir:$target")
    fi
  done
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "all fuzz targets ran ${seconds}s without a failure"
