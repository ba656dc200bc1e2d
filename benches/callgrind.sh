#!/usr/bin/env bash
# User-space instructions per query under callgrind, for clusterdns and knot, on the same queries.
#
#   benches/callgrind.sh [--queries FILE] [--corefile FILE] [--knot-zone [NAME=]FILE]...
#                        [--apiserver OBJECTS] [--probe 'NAME TYPE'] [--n1 N] [--n2 N] [--qps Q]
#                        [--only clusterdns|knot]
#
# Without options: one query (`a.one.test A`) against a one-record zone, clusterdns answering
# with whoami behind errors and prometheus. For a cluster (see bench/README.md):
#
#   benches/callgrind.sh --apiserver /tmp/c10k/objects.json --corefile /tmp/c10k/Corefile.cg \
#     --queries /tmp/c10k/queries-mix.txt \
#     --knot-zone cluster.local=/tmp/c10k/cluster.zone --knot-zone in-addr.arpa=/tmp/c10k/reverse.zone
#
# --apiserver starts the release test API server (tests/apiserver) on CPU 1, outside valgrind,
# with those objects, and exports KUBECONFIG with the path of its kubeconfig, so the Corefile says
# `kubeconfig {$KUBECONFIG}`. The server port is the first `:PORT {` in the Corefile; knot listens
# on the same port. A zone's NAME defaults to its file's $ORIGIN.
#
# Each server runs under `valgrind --tool=callgrind`, pinned to CPU 0, twice: once answering N1
# queries and once N2 (the first N lines of the query file, cycled; dnsperf on CPU 1 at a gentle
# fixed rate, so nothing is lost under valgrind's slowdown). Once the server answers the probe
# (default: the query file's first line) with NOERROR or NXDOMAIN, its counters are zeroed
# (callgrind_control -z), which drops startup (zone load, the API sync); subtracting the N1 run
# from the N2 run then drops idle loops and shutdown:
#   instructions per query = (I(N2) - I(N1)) / (answered(N2) - answered(N1)).
# Callgrind counts instructions, not time, so the figures repeat whatever else the machine does.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=/tmp/clusterdns-cg
queries=""
corefile=""
zones=()
objects=""
probe=""
only=""
n1=5000
n2=25000
qps=3000
while [ $# -gt 0 ]; do
  case "$1" in
    --queries) queries=$2; shift 2 ;;
    --corefile) corefile=$2; shift 2 ;;
    --knot-zone) zones+=("$2"); shift 2 ;;
    --apiserver) objects=$2; shift 2 ;;
    --probe) probe=$2; shift 2 ;;
    --n1) n1=$2; shift 2 ;;
    --n2) n2=$2; shift 2 ;;
    --qps) qps=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$n2" -gt "$n1" ] || { echo "--n2 must be larger than --n1" >&2; exit 2; }
mkdir -p "$work"
if [ ${#zones[@]} -eq 0 ]; then
  zones=("$work/one.zone")
  printf '$ORIGIN one.test.\n$TTL 3600\n@ IN SOA ns.one.test. hostmaster.one.test. 1 7200 3600 1209600 3600\n@ IN NS ns.one.test.\nns IN A 127.0.0.1\na IN A 10.0.0.1\n' > "${zones[0]}"
fi
if [ -z "$queries" ]; then
  queries=$work/q.txt
  for _ in $(seq 1 1000); do echo "a.one.test A"; done > "$queries"
fi
if [ -z "$corefile" ]; then
  corefile=$work/Corefile
  printf 'one.test:5399 {\n    bind 127.0.0.1\n    errors\n    prometheus 127.0.0.1:0\n    whoami\n}\n' > "$corefile"
fi
[ -n "$probe" ] || probe=$(head -1 "$queries")
port=$(grep -o ':[0-9]\+ {' "$corefile" | head -1 | tr -dc 0-9)
[ -n "$port" ] || { echo "$corefile: no ':PORT {' in it" >&2; exit 2; }

# The query files: exactly n lines, the input's first lines, cycled if it is shorter.
for n in "$n1" "$n2"; do
  awk -v n="$n" '{ q[NR] = $0 } END { for (i = 0; i < n; i++) print q[i % NR + 1] }' "$queries" > "$work/q.$n.txt"
done

bin=$here/target/release/clusterdns
apibin=$here/target/release/clusterdns-apiserver
[ -x "$bin" ] || (cd "$here" && cargo build --release -q --bin clusterdns)

apipid=""
cleanup() { [ -z "$apipid" ] || kill -TERM "$apipid" 2>/dev/null || true; }
trap cleanup EXIT
if [ -n "$objects" ]; then
  [ -x "$apibin" ] || (cd "$here" && cargo build --release -q -p clusterdns-test-apiserver --bin clusterdns-apiserver)
  rm -f "$work/kubeconfig"
  taskset -c 1 "$apibin" --objects "$objects" --port 0 --kubeconfig-out "$work/kubeconfig" \
    >"$work/apiserver.log" 2>&1 &
  apipid=$!
  for _ in $(seq 1 600); do [ -s "$work/kubeconfig" ] && break; sleep 0.1; done
  [ -s "$work/kubeconfig" ] || { echo "the test API server did not start: $work/apiserver.log" >&2; exit 1; }
  export KUBECONFIG=$work/kubeconfig
fi

# answered <dnsperf output>: queries completed.
answered() { awk '/Queries completed:/ {print $3; exit}' "$1"; }

# instructions <name> <n> <command...>: runs the command under callgrind, zeroes its counters once
# it answers the probe, sends n queries, stops it; prints "instructions answered".
instructions() {
  local name=$1 n=$2; shift 2
  local out=$work/callgrind.$name.$n
  rm -f "$out"
  taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >"$work/$name.$n.log" 2>&1 &
  local pid=$! ready="" status
  # shellcheck disable=SC2086 # the probe is "NAME TYPE"
  for _ in $(seq 1 1500); do
    status=$(dig @127.0.0.1 -p "$port" $probe +tries=1 +time=1 2>/dev/null | awk '/->>HEADER<<-/ {print $6}')
    case "$status" in NOERROR, | NXDOMAIN,) ready=1; break ;; esac
    kill -0 $pid 2>/dev/null || break
    sleep 0.2
  done
  [ -n "$ready" ] || { echo "$name never answered '$probe': $work/$name.$n.log" >&2; kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; return 1; }
  callgrind_control -z $pid >/dev/null 2>&1
  taskset -c 1 timeout 600 dnsperf -s 127.0.0.1 -p "$port" -d "$work/q.$n.txt" -n 1 -Q "$qps" -c 1 -q 50 -t 5 \
    >"$work/dnsperf.$name.$n" 2>&1
  kill -TERM $pid; wait $pid 2>/dev/null || true
  local lost
  lost=$(awk '/Queries lost:/ {print $3; exit}' "$work/dnsperf.$name.$n")
  [ "$lost" = "0" ] || echo "$name: $lost queries lost at n=$n" >&2
  echo "$(awk '/^summary:|^totals:/ {print $2; exit}' "$out") $(answered "$work/dnsperf.$name.$n")"
}

# run <name> <command...>: prints the result line and leaves the figure in $per_query.
per_query=""
run() {
  local name=$1; shift
  local r1 r2 i1 i2 a1 a2
  r1=$(instructions "$name" "$n1" "$@")
  r2=$(instructions "$name" "$n2" "$@")
  read -r i1 a1 <<<"$r1"
  read -r i2 a2 <<<"$r2"
  per_query=$(( (i2 - i1) / (a2 - a1) ))
  echo "$name: $per_query instructions per query (I($a1 answered)=$i1, I($a2 answered)=$i2)"
}

cd_ir=""
if [ "$only" != knot ]; then
  run clusterdns "$bin" -conf "$corefile" -quiet
  cd_ir=$per_query
fi
[ "$only" != clusterdns ] || exit 0

knotconf=$work/knot.conf
rm -rf "$work/knot"
mkdir -p "$work/knot"
{
  echo "server:"
  echo "    listen: 127.0.0.1@$port"
  echo "    rundir: $work/knot"
  echo "    udp-workers: 1"
  echo "    tcp-workers: 1"
  echo "    background-workers: 1"
  echo "database:"
  echo "    storage: $work/knot"
  echo "template:"
  echo "  - id: default"
  echo "    storage: $work/knot"
  echo "    journal-content: none"
  echo "    zonefile-sync: -1"
  echo "    semantic-checks: off"
  echo "zone:"
  for z in "${zones[@]}"; do
    if [[ $z == *=* ]]; then
      name=${z%%=*}; file=${z#*=}
    else
      file=$z; name=$(awk 'toupper($1) == "$ORIGIN" { print $2; exit }' "$file")
    fi
    echo "  - domain: \"${name%.}\""
    echo "    file: \"$(realpath "$file")\""
  done
} > "$knotconf"
run knot /usr/sbin/knotd -c "$knotconf"
knot_ir=$per_query
if [ -n "$cd_ir" ]; then
  echo "clusterdns / knot: $(awk -v a="$cd_ir" -v b="$knot_ir" 'BEGIN { printf "%.2f", a / b }')"
fi
