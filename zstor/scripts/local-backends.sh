#!/bin/sh
# Starts N zdb servers (ports 9901..9900+N) under DIR, each with one password-protected seq
# namespace "zstor", and writes DIR/store.json for `grid store` (dataShards 4, parityShards 2;
# backends past the 6th are spares for `repair`).
#   zstor/scripts/local-backends.sh DIR [N] [ZDB_BINARY]
# Stop them with: kill $(cat DIR/pids)
set -eu
DIR=${1:?usage: local-backends.sh DIR [N] [ZDB_BINARY]}
N=${2:-7}
ZDB=${3:-${CARGO_TARGET_DIR:-target}/release/zdb}
mkdir -p "$DIR"
: > "$DIR/pids"
backends=""
i=1
while [ "$i" -le "$N" ]; do
  port=$((9900 + i))
  "$ZDB" --data "$DIR/zdb$i/data" --index "$DIR/zdb$i/index" --port "$port" --mode seq \
    > "$DIR/zdb$i.log" 2>&1 &
  echo $! >> "$DIR/pids"
  tries=0
  until redis-cli -p "$port" PING > /dev/null 2>&1; do
    tries=$((tries + 1)); [ "$tries" -lt 50 ] || { echo "zdb on $port did not start" >&2; exit 1; }
    sleep 0.1
  done
  redis-cli -p "$port" NSNEW zstor > /dev/null
  redis-cli -p "$port" NSSET zstor password "pw$i" > /dev/null
  redis-cli -p "$port" NSSET zstor public 0 > /dev/null
  [ -z "$backends" ] || backends="$backends,"
  backends="$backends
    {\"address\": \"127.0.0.1:$port\", \"namespace\": \"zstor\", \"password\": \"pw$i\"}"
  i=$((i + 1))
done
cat > "$DIR/store.json" <<JSON
{
  "version": 1,
  "dataShards": 4,
  "parityShards": 2,
  "backends": [$backends
  ]
}
JSON
echo "$N zdb servers running; config: $DIR/store.json; stop: kill \$(cat $DIR/pids)"
