#!/bin/bash
# Runs redis-benchmark against redis-server and zdb on this machine, same
# parameters, and prints requests/s of both and the zdb / redis ratio.
set -e
ZDB=$(realpath "${ZDB:-target/release/zdb}")
N=${N:-1000000}
cd "${BENCH_DIR:-/tmp/zdb-bench}" 2>/dev/null || { mkdir -p "${BENCH_DIR:-/tmp/zdb-bench}"; cd "${BENCH_DIR:-/tmp/zdb-bench}"; }
rm -rf zdbdata redisdata && mkdir -p redisdata
redis-server --port 16379 --save '' --appendonly no --dir redisdata --daemonize no > redis.log 2>&1 &
RPID=$!
RUST_LOG=warn $ZDB --data zdbdata/data --index zdbdata/index --port 19900 --synctime 1 --maxsize 0 > zdb.log 2>&1 &
ZPID=$!
sleep 1
# prints "SET <req/s>" and "GET <req/s>"
bench() {
  redis-benchmark -p "$1" -t set,get -n "$2" -r "$2" -d 100 -c 50 -P "$3" -q 2>&1 |
    tr "\r" "\n" | grep "per second" | awk '{sub(":", "", $1); print $1, $2}'
}
for P in 16 1; do
  if [ $P = 1 ]; then N=${N1:-200000}; fi
  echo "== pipeline $P, $N requests"
  redis=$(bench 16379 $N $P)
  zdb=$(bench 19900 $N $P)
  paste -d " " <(echo "$redis") <(echo "$zdb") |
    awk '{printf "%s redis-server %.0f  zdb %.0f  zdb/redis %.2f\n", $1, $2, $4, $4 / $2}'
done
echo "-- zdb rss after runs (KiB): $(grep VmRSS /proc/$ZPID/status)"
echo "-- redis rss after runs: $(grep VmRSS /proc/$RPID/status)"
redis-cli -p 19900 DBSIZE
kill $RPID $ZPID
wait
