#!/bin/bash
# Memory per million keys (user mode) and reopen time of a namespace with N keys.
ZDB=$(realpath "${ZDB:-target/release/zdb}")
cd "${BENCH_DIR:-/tmp/zdb-bench}" 2>/dev/null || { mkdir -p "${BENCH_DIR:-/tmp/zdb-bench}"; cd "${BENCH_DIR:-/tmp/zdb-bench}"; }; rm -rf zdbk; KEYS=${KEYS:-10000000}
RUST_LOG=info $ZDB --data zdbk/data --index zdbk/index --port 19902 --synctime 1 --maxsize 0 2> k1.log &
ZPID=$!; sleep 0.5
base=$(grep VmRSS /proc/$ZPID/status | awk '{print $2}')
# -r far above -n: nearly every SET is a new key; 10-byte values
redis-benchmark -p 19902 -t set -n $KEYS -r 100000000 -d 10 -c 50 -P 64 -q 2>&1 | tr '\r' '\n' | grep "per second"
n=$(redis-cli -p 19902 DBSIZE)
rss=$(grep VmRSS /proc/$ZPID/status | awk '{print $2}')
echo "keys=$n rss_kib=$rss base_kib=$base bytes_per_key=$(( (rss-base)*1024/n ))"
kill $ZPID; wait
rm -f k2.out k2.log; start=$(date +%s.%N)
RUST_LOG=info $ZDB --data zdbk/data --index zdbk/index --port 19902 --maxsize 0 2> k2.log > k2.out &
ZPID=$!
until grep -q listening k2.out 2>/dev/null; do sleep 0.05; done
end=$(date +%s.%N)
echo "reopen_seconds=$(echo "$end - $start" | bc) rss_after_reopen_kib=$(grep VmRSS /proc/$ZPID/status | awk '{print $2}')"
grep "namespace opened" k2.log | sed 's/\x1b\[[0-9;]*m//g' | grep default
du -sh zdbk/data zdbk/index
kill $ZPID; wait
