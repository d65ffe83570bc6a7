#!/usr/bin/env bash
# Flood throughput of a local 4-validator network: RUNS times, each on a freshly started
# `gridnode local-testnet` (state grows with every flood, so runs on one network are not
# comparable), floods the RPC node with SENDERS x PER_SENDER signed transfers and prints each
# run's figures, then the median finalized tx/s.
#
#   cargo build --release -p gridnode -p gridchain-bench
#   node/bench/flood-bench.sh [runs, default 5]
set -euo pipefail
BIN="${CARGO_TARGET_DIR:-target}/release"
RUNS="${1:-5}"
SENDERS="${SENDERS:-1000}"
PER_SENDER="${PER_SENDER:-50}"
DIR="$(mktemp -d)"
NET=""
stop_net() {
  if [ -n "$NET" ]; then
    kill -INT "$NET" 2>/dev/null || true
    wait "$NET" 2>/dev/null || true
    NET=""
  fi
}
trap 'stop_net; rm -rf "$DIR"' EXIT

rpc_up() {
  curl -s -H 'Content-Type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"chain_getHeader","params":[]}' \
    http://127.0.0.1:9948 | grep -q '"number"'
}

rates=()
for run in $(seq 1 "$RUNS"); do
  rm -rf "$DIR/net"
  "$BIN/gridnode" local-testnet --validators 4 --base-path "$DIR/net" >"$DIR/net.log" 2>&1 &
  NET=$!
  until rpc_up; do sleep 0.5; done
  sleep 5 # let the validators find each other and finalize a few blocks
  out=$("$BIN/gridchain-bench" --rpc ws://127.0.0.1:9948 --senders "$SENDERS" \
    --per-sender "$PER_SENDER" 2>"$DIR/bench.log")
  echo "run $run: $(echo "$out" | grep -E 'finalized|p50' | tr -s ' ' | tr '\n' ' ')"
  rates+=("$(echo "$out" | awk '/^finalized/ {print $2}')")
  stop_net
done
printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {
  m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2
  printf "median finalized %.0f tx/s over %d runs (min %d, max %d)\n", m, NR, a[1], a[NR]}'
