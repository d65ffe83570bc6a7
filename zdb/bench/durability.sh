#!/bin/bash
# The cost of durable writes: redis-benchmark SET throughput against
#   zdb           default mode (acknowledged once handed to the OS),
#   zdb --sync    fsync before acknowledging (what zos-agent runs),
#   redis-server  --appendonly yes --appendfsync always (fsync before acknowledging),
# same run, same parameters, and the ratios. Every SET writes a new key
# (-r far above -n): zdb answers a SET of an unchanged value without writing,
# which would hide the fsync.
set -e
ZDB=$(realpath "${ZDB:-target/release/zdb}")
N=${N:-200000}
ROUNDS=${ROUNDS:-3}
cd "${BENCH_DIR:-/tmp/zdb-bench}" 2>/dev/null || { mkdir -p "${BENCH_DIR:-/tmp/zdb-bench}"; cd "${BENCH_DIR:-/tmp/zdb-bench}"; }
# prints the SET requests/s (port, requests, pipeline, clients)
bench() {
  redis-benchmark -p "$1" -t set -n "$2" -r 100000000 -d 100 -c "${4:-50}" -P "$3" -q 2>&1 |
    tr "\r" "\n" | grep "per second" | awk '{print $2}'
}
wait_port() { until redis-cli -p "$1" PING >/dev/null 2>&1; do sleep 0.05; done; }
for round in $(seq "$ROUNDS"); do
  rm -rf zdb-os zdb-sync redis-aof && mkdir -p redis-aof
  redis-server --port 16380 --save '' --appendonly yes --appendfsync always --dir redis-aof \
    --daemonize no > redis-aof.log 2>&1 &
  RPID=$!
  RUST_LOG=warn $ZDB --data zdb-os/data --index zdb-os/index --port 19910 --maxsize 0 > zdb-os.log 2>&1 &
  OPID=$!
  RUST_LOG=warn $ZDB --data zdb-sync/data --index zdb-sync/index --port 19911 --maxsize 0 --sync > zdb-sync.log 2>&1 &
  SPID=$!
  wait_port 16380; wait_port 19910; wait_port 19911
  # 50 clients unpipelined and pipelined, then one client alone (one fsync per SET)
  for case in "1 50" "16 50" "1 1"; do
    set -- $case; P=$1; C=$2
    n=$N; [ "$P" = 16 ] && n=$((N * 5)); [ "$C" = 1 ] && n=$((N / 40))
    os=$(bench 19910 $n $P $C)
    sync=$(bench 19911 $n $P $C)
    aof=$(bench 16380 $n $P $C)
    awk -v r="$round" -v p="$P" -v c="$C" -v n="$n" -v os="$os" -v sync="$sync" -v aof="$aof" 'BEGIN {
      printf "round %s -P %-2s -c %-2s n=%-7s zdb %8.0f  zdb --sync %7.0f  redis always %7.0f  sync/default %.3f  sync/redis-always %.2f\n",
        r, p, c, n, os, sync, aof, sync / os, sync / aof }'
  done
  kill $RPID $OPID $SPID
  wait
done
