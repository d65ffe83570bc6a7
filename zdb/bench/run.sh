#!/bin/bash
# Runs redis-benchmark against redis-server and zdb on this machine, same parameters.
set -e
ZDB=$(realpath "${ZDB:-target/release/zdb}")
N=${N:-1000000}
cd "${BENCH_DIR:-/tmp/zdb-bench}" 2>/dev/null || { mkdir -p "${BENCH_DIR:-/tmp/zdb-bench}"; cd "${BENCH_DIR:-/tmp/zdb-bench}"; }
rm -rf zdbdata redisdata && mkdir -p redisdata
redis-server --port 16379 --save '' --appendonly no --dir redisdata --daemonize no > redis.log 2>&1 &
RPID=$!
RUST_LOG=warn $ZDB --data zdbdata/data --index zdbdata/index --port 19900 --synctime 1 > zdb.log 2>&1 &
ZPID=$!
sleep 1
for P in 16 1; do
  if [ $P = 1 ]; then N=${N1:-200000}; fi
  echo "== pipeline $P"
  echo "-- redis-server"
  redis-benchmark -p 16379 -t set,get -n $N -r $N -d 100 -c 50 -P $P -q 2>&1 | tr "\r" "\n" | grep "per second"
  echo "-- zdb"
  redis-benchmark -p 19900 -t set,get -n $N -r $N -d 100 -c 50 -P $P -q 2>&1 | tr "\r" "\n" | grep "per second"
done
echo "-- zdb rss after runs (KiB): $(grep VmRSS /proc/$ZPID/status)"
echo "-- redis rss after runs: $(grep VmRSS /proc/$RPID/status)"
redis-cli -p 19900 DBSIZE
kill $RPID $ZPID
wait
