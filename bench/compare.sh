#!/usr/bin/env bash
# sessionplane side by side with etcd and Redis, in one run, on this machine's loopback:
#   sessionplane, a 3-node site and a 1-node site (fsync on, as always);
#   etcd 3.4, 3 members (Debian's etcd-server, default fsync);
#   Redis 7, one node, appendonly with appendfsync everysec (Debian's redis-server).
# Installs the peers with apt when missing, starts everything, runs every workload on each
# system in turn, stops what it started, and writes the table into docs/BENCHMARKS.md.
#
#   bench/compare.sh                     # the full run (1,000,000 sessions; ~30 min)
#   SESSIONS=20000 LISTED=10000 SECONDS_PER_LEVEL=2 bench/compare.sh --no-write   # a smoke run
#   SYSTEMS="sp3 etcd" PROFILE="revoke-one list-user" bench/compare.sh --no-write
#     only those systems; perf records sessionplane's nodes during the named workloads
#     (reports in target/compare/perf-<workload>-<system>.txt)
set -euo pipefail
cd "$(dirname "$0")/.."

SESSIONS=${SESSIONS:-1000000}
LISTED=${LISTED:-100000}
SECONDS_PER_LEVEL=${SECONDS_PER_LEVEL:-10}
write=yes
[ "${1:-}" = "--no-write" ] && write=no

need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
    # Packages only: their init scripts must not start services of their own here.
    own_policy=no
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        own_policy=yes
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
    [ "$own_policy" = yes ] && rm -f /usr/sbin/policy-rc.d
fi

cargo build --release --bin sessionplane -p sessionplane -p sessionplane-bench --bin sessionplane-bench
node=target/release/sessionplane
bench=target/release/sessionplane-bench

# On the disk, not in memory: every system here syncs its log to it.
dir=target/compare
rm -rf "$dir"
mkdir -p "$dir"
results="$dir/results.jsonl"
export SESSIONPLANE_BENCH_SECRET=compare-cluster-secret-0123456789
export SESSIONPLANE_BENCH_ADMIN_PASSWORD=compare-admin-password

started=()
stop_all() {
    for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${started[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT

# sessionplane: site "bench" of $1 nodes, api ports $2+k, cluster ports $3+k.
sessionplane_site() {
    local name=$1 n=$2 api=$3 cluster=$4 k
    local members=""
    for k in $(seq 1 "$n"); do
        members+=$'\n'"[[site_nodes]]"$'\n'"id = $k"$'\n'"name = \"$name-$k\""
        members+=$'\n'"cluster = \"127.0.0.1:$((cluster + k))\""$'\n'"api = \"http://127.0.0.1:$((api + k))\""$'\n'
    done
    for k in $(seq 1 "$n"); do
        cat > "$dir/$name-$k.toml" <<EOF
node_id = $k
node_name = "$name-$k"
site = "bench"
data_dir = "$dir/$name-$k"
cluster_secret = "$SESSIONPLANE_BENCH_SECRET"

[iam]
token_key = "compare-token-key-0123456789"

# Cheap hashing: only the socket-close rounds log in, and their login is not timed.
[iam.argon2]
memory_kib = 64
iterations = 1
parallelism = 1

[listen]
api = "127.0.0.1:$((api + k))"
cluster = "127.0.0.1:$((cluster + k))"

[mail]
enabled = false
$members
EOF
        SESSIONPLANE_ADMIN_PASSWORD=$SESSIONPLANE_BENCH_ADMIN_PASSWORD RUST_LOG=warn \
            "$node" serve --config "$dir/$name-$k.toml" 2>"$dir/$name-$k.log" &
        started+=($!)
        eval "${name//-/_}_pids+=($!)"
    done
}

sp3_pids=(); sp1_pids=(); etcd_pids=()
sessionplane_site sp3 3 19100 19200
sessionplane_site sp1 1 19110 19210

cluster_etcd=""
for k in 1 2 3; do cluster_etcd+="m$k=http://127.0.0.1:$((23800 + k)),"; done
for k in 1 2 3; do
    etcd --name "m$k" --data-dir "$dir/etcd-$k" \
        --listen-client-urls "http://127.0.0.1:$((23790 + k))" \
        --advertise-client-urls "http://127.0.0.1:$((23790 + k))" \
        --listen-peer-urls "http://127.0.0.1:$((23800 + k))" \
        --initial-advertise-peer-urls "http://127.0.0.1:$((23800 + k))" \
        --initial-cluster "${cluster_etcd%,}" --initial-cluster-state new \
        --initial-cluster-token compare --quota-backend-bytes 8589934592 \
        --logger zap --log-level warn 2>"$dir/etcd-$k.log" &
    started+=($!)
    etcd_pids+=($!)
done

mkdir -p "$dir/redis"
redis-server --bind 127.0.0.1 --port 63791 --appendonly yes --appendfsync everysec --save '' \
    --dir "$PWD/$dir/redis" --daemonize no --logfile "$PWD/$dir/redis.log" &
started+=($!)
redis_pid=$!

join() { local IFS=,; echo "$*"; }
declare -A label target
label[sp3]="sessionplane, 3 nodes"
target[sp3]="--system sessionplane --endpoints http://127.0.0.1:19101,http://127.0.0.1:19102,http://127.0.0.1:19103 --cluster 127.0.0.1:19201,127.0.0.1:19202,127.0.0.1:19203 --pids $(join "${sp3_pids[@]}")"
label[sp1]="sessionplane, 1 node"
target[sp1]="--system sessionplane --endpoints http://127.0.0.1:19111 --cluster 127.0.0.1:19211 --pids $(join "${sp1_pids[@]}")"
label[etcd]="etcd 3.4, 3 members"
target[etcd]="--system etcd --endpoints http://127.0.0.1:23791,http://127.0.0.1:23792,http://127.0.0.1:23793 --pids $(join "${etcd_pids[@]}")"
label[redis]="Redis 7, 1 node, everysec"
target[redis]="--system redis --endpoints redis://127.0.0.1:63791 --pids $redis_pid"
label[etcd-seq]="etcd 3.4, 3 members, revokes one after the other"
target[etcd-seq]="${target[etcd]} --sequential-revokes"
read -r -a systems <<<"${SYSTEMS:-sp3 sp1 etcd redis}"

run() {
    local system=$1 workload=$2; shift
    local perf_pid=""
    if [[ " ${PROFILE:-} " == *" $workload "* && $system == sp* ]]; then
        local pids="${target[$system]##*--pids }"
        perf record -F 999 -p "$pids" -o "$dir/perf-$workload-$system.data" 2>/dev/null &
        perf_pid=$!
        sleep 0.5
    fi
    # shellcheck disable=SC2086 # the target line is a list of words
    "$bench" run ${target[$system]} --label "${label[$system]}" --out "$results" "$@"
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid"; wait "$perf_pid" || true
        perf report -i "$dir/perf-$workload-$system.data" --stdio --sort dso,symbol 2>/dev/null \
            | grep -v "^#" | grep -v "^$" | cut -c1-160 | sed "s/ *-* *-* *$//" | head -40 \
            > "$dir/perf-$workload-$system.txt" || true
    fi
}

wait_ready() {
    for _ in $(seq 1 120); do
        curl -sf -o /dev/null http://127.0.0.1:19101/healthcheck \
            && curl -sf -o /dev/null http://127.0.0.1:19111/healthcheck \
            && curl -sf http://127.0.0.1:23791/health | grep -q '"health":"true"' \
            && redis-cli -p 63791 ping >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    echo "the systems did not come up; logs in $dir" >&2
    exit 1
}
wait_ready
# The first administrator is written once the site has a leader and its directory.
for _ in $(seq 1 60); do
    run sp3 prepare >/dev/null 2>&1 && run sp1 prepare >/dev/null 2>&1 && break
    sleep 1
done
run sp3 prepare && run sp1 prepare

for s in "${systems[@]}"; do run "$s" seed --from 0 --to "$LISTED"; done
for s in "${systems[@]}"; do run "$s" list-all --expect "$LISTED" --rounds 5; done
for s in "${systems[@]}"; do run "$s" seed --from "$LISTED" --to "$SESSIONS"; done
for s in "${systems[@]}"; do run "$s" revoke-one --rounds 1000; done
for s in "${systems[@]}"; do run "$s" revoke-user --rounds 50; done
[[ " ${systems[*]} " == *" etcd "* ]] && run etcd-seq revoke-user --rounds 50 --first 50
for s in "${systems[@]}"; do run "$s" list-user --rounds 1000; done
for level in 1 16 64 256; do
    for s in "${systems[@]}"; do
        run "$s" create --clients "$level" --seconds "$SECONDS_PER_LEVEL"
    done
done
[[ " ${systems[*]} " == *" sp3 "* ]] && run sp3 socket-close --rounds 200

table=$("$bench" table "$results")
echo "$table"
[ "$write" = yes ] || exit 0

machine="$(nproc) vCPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, Linux $(uname -r)"
versions="sessionplane $(git rev-parse --short HEAD), $(etcd --version | head -1), $(redis-server --version | cut -d' ' -f1-3)"
TABLE="$table" MACHINE="$machine" VERSIONS="$versions" SESSIONS="$SESSIONS" LISTED="$LISTED" \
    SECONDS_PER_LEVEL="$SECONDS_PER_LEVEL" \
    RUN_AT="$(date -u +%Y-%m-%d)" python3 - <<'EOF'
import os, re
path = "docs/BENCHMARKS.md"
text = open(path).read()
begin, end = "<!-- bench/compare.sh: begin -->", "<!-- bench/compare.sh: end -->"
section = f"""{begin}
Run of {os.environ['RUN_AT']}: {os.environ['MACHINE']}; {os.environ['VERSIONS']}.
{int(os.environ['SESSIONS']):,} sessions at the revocations and the user listings, {int(os.environ['LISTED']):,} at "list all".
Command: `SESSIONS={os.environ['SESSIONS']} LISTED={os.environ['LISTED']} SECONDS_PER_LEVEL={os.environ['SECONDS_PER_LEVEL']} bench/compare.sh`.

{os.environ['TABLE']}
{end}"""
if begin in text:
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: section, text, flags=re.S)
else:
    text += "\n" + section + "\n"
open(path, "w").write(text)
EOF
echo "written to docs/BENCHMARKS.md"
