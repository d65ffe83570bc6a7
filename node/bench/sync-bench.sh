#!/usr/bin/env bash
# Catch-up sync speed: a dev validator builds a chain of blocks of transfers, then a fresh full
# node syncs it from that peer; prints blocks/s and transfers/s of the catch-up.
#
#   cargo build --release -p gridnode -p gridchain-bench
#   node/bench/sync-bench.sh [blocks, default 3000]
set -euo pipefail
BIN="${CARGO_TARGET_DIR:-target}/release"
BLOCKS="${1:-3000}"
DIR="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"' EXIT

height() {
  curl -s -H 'Content-Type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"chain_getHeader","params":[]}' \
    "http://127.0.0.1:$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["number"])' 2>/dev/null || echo 0
}

"$BIN/gridnode" --dev --no-agent --no-explorer --base-path "$DIR/a" --block-time-ms 20 \
  --port 40333 --rpc-port 19944 --prometheus-port 19615 2>"$DIR/a.log" &
until [ "$(height 19944)" -gt 0 ]; do sleep 0.2; done
PEER=$(grep -o 'local node identity peer_id=[A-Za-z0-9]*' "$DIR/a.log" | head -1 | cut -d= -f2)

echo "filling blocks with transfers…"
"$BIN/gridchain-bench" --rpc ws://127.0.0.1:19944 --senders 1000 --per-sender 20 | tail -3
while [ "$(height 19944)" -lt "$BLOCKS" ]; do sleep 1; done
TARGET=$(height 19944)
TXS=$(grep 'committed final block' "$DIR/a.log" | grep -o 'extrinsics=[0-9]*' | cut -d= -f2 | python3 -c 'import sys; print(sum(int(l) for l in sys.stdin))')

echo "syncing $TARGET blocks ($TXS extrinsics) into a fresh full node…"
START=$(date +%s.%N)
"$BIN/gridnode" --chain dev --base-path "$DIR/b" --port 40335 --rpc-port 19946 --no-prometheus \
  --bootnodes "/ip4/127.0.0.1/tcp/40333/p2p/$PEER" 2>"$DIR/b.log" &
until [ "$(height 19946)" -ge "$TARGET" ]; do sleep 0.1; done
END=$(date +%s.%N)
python3 -c "t=$END-$START; print(f'synced {$TARGET} blocks in {t:.1f} s: {$TARGET/t:.0f} blocks/s, {$TXS/t:.0f} extrinsics/s (incl. start-up)')"
grep -o 'caught up.*' "$DIR/b.log" | sed 's/\x1b\[[0-9;]*m//g' || true
