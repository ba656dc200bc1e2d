#!/usr/bin/env bash
# User-space instructions per query under callgrind, for clusterdns and a peer, on one query.
#
#   benches/callgrind.sh [--queries FILE] [--corefile FILE] [--knot-zone FILE] [--n1 N] [--n2 N]
#
# Each server runs under `valgrind --tool=callgrind` twice: once answering N1 queries and once
# N2 (dnsperf at a gentle fixed rate, so nothing is lost under valgrind's slowdown). Instructions
# per query = (I(N2) - I(N1)) / (N2 - N1): startup, shutdown and idle loops cancel out.
# Callgrind counts instructions, not time, so the figures repeat whatever else the machine does.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
queries=/tmp/clusterdns-cg/q.txt
corefile=""
zone=""
n1=5000
n2=25000
while [ $# -gt 0 ]; do
  case "$1" in
    --queries) queries=$2; shift 2 ;;
    --corefile) corefile=$2; shift 2 ;;
    --knot-zone) zone=$2; shift 2 ;;
    --n1) n1=$2; shift 2 ;;
    --n2) n2=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
work=/tmp/clusterdns-cg
mkdir -p "$work"
if [ -z "$zone" ]; then
  zone=$work/one.zone
  printf '$ORIGIN one.test.\n$TTL 3600\n@ IN SOA ns.one.test. hostmaster.one.test. 1 7200 3600 1209600 3600\n@ IN NS ns.one.test.\nns IN A 127.0.0.1\na IN A 10.0.0.1\n' > "$zone"
fi
[ -f "$queries" ] || for i in $(seq 1 1000); do echo "a.one.test A"; done > "$queries"
if [ -z "$corefile" ]; then
  corefile=$work/Corefile
  printf 'one.test:5399 {\n    bind 127.0.0.1\n    errors\n    prometheus 127.0.0.1:0\n    whoami\n}\n' > "$corefile"
fi
port=$(grep -o ':[0-9]\+ {' "$corefile" | head -1 | tr -dc 0-9)
bin=$here/target/release/clusterdns
[ -x "$bin" ] || (cd "$here" && cargo build --release -q)

# instructions <name> <n> <command...>: runs the command under callgrind, sends n queries.
instructions() {
  local name=$1 n=$2; shift 2
  local out=$work/callgrind.$name.$n
  rm -f "$out"
  taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >"$work/$name.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 200); do
    dig @127.0.0.1 -p "$port" a.one.test +tries=1 +time=1 >/dev/null 2>&1 && break
    sleep 0.2
  done
  taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$queries" -n $(( n / 1000 )) -Q 3000 -c 1 -q 50 -t 5 >"$work/dnsperf.$name.$n" 2>&1
  kill -TERM $pid; wait $pid 2>/dev/null || true
  local lost
  lost=$(awk '/Queries lost/ {print $3}' "$work/dnsperf.$name.$n")
  [ "$lost" = "0" ] || { echo "$name: $lost queries lost at n=$n" >&2; }
  awk '/^summary:|^totals:/ {print $2; exit}' "$out"
}

run() {
  local name=$1; shift
  local i1 i2
  i1=$(instructions "$name" "$n1" "$@")
  i2=$(instructions "$name" "$n2" "$@")
  echo "$name: $(( (i2 - i1) / (n2 - n1) )) instructions per query (I($n1)=$i1, I($n2)=$i2)"
}

run clusterdns "$bin" -conf "$corefile" -quiet
knotconf=$work/knot.conf
mkdir -p "$work/knot"
cat > "$knotconf" <<KNOT
server:
    listen: 127.0.0.1@$port
    rundir: $work/knot
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: $work/knot
zone:
  - domain: one.test
    file: $zone
    storage: $work
KNOT
run knot /usr/sbin/knotd -c "$knotconf"
