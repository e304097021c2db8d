#!/usr/bin/env bash
# How an aggregated GET /containers/json grows with the number of members.
# Up to the largest size, Deckhand instances listen on loopback (127.0.2.i:9001) in
# the root namespace and form one cluster in front of the 3 lab engines
# (scripts/swarm-lab): instance i talks to engine (i-1)%3+1 and answers to the node
# name node<engine>-<i> (DECKHAND_NODE_NAME), so each is a distinct member; every
# instance is given every address (AGENT_CLUSTER_ADDR) and probes them all, as
# agents do in a real Swarm. For each size N the first N instances run (more are
# started as N grows); once instance 1 lists N members, it is measured with wrk:
# one request at a time (single-request latency), then a fixed low concurrency;
# the agents' and engines' CPU time per request comes from /proc, and the agents'
# CPU while idle (membership probes only) from a quiet window before each size.
# "entry CPU/req" is instance 1's own CPU time per request during the one-at-a-time
# run: what the asking agent spends on its own part and on asking, checking and
# merging every member's answer (the per-member cost a real Swarm's latency model needs).
# "entry busiest loop" is the most CPU time any one of instance 1's threads spent per
# request in that run (from /proc/<pid>/task/*/schedstat): with a fan-out spread over
# the event loops (Aggregator.memberLoops), the loops run in parallel on a node with
# cores to spare, and the busiest one is the asking agent's share of the latency.
# Its four busiest threads' CPU per request go to stderr, to see how the work fell.
# PIN_ENTRY=1 runs instance 1 alone on CPU 0 and every other instance and wrk on the
# other CPUs, so that the entry's CPU per request is measured without 2N event
# loops thrashing its caches, as on a node of its own (latencies then say less).
# PROFILE=prefix records the entry with perf during that run (prefix.N per size).
# ROUTE=host-info measures the fleet inventory (GET /v2/cluster/host/info, every
# instance with CAP_HOST_MANAGEMENT=1 reading this machine) instead of the list.
#   bench/cluster-scale.sh [sizes, default "3 6 12 24 30 48"] [seconds per measure, default 8]
#                          [connections, default 4] [containers per engine, default 10]
# Needs root and the lab (the one that is up is used; else a private one is brought
# up and taken down). On a shared machine hold the lab lock, e.g.
#   flock /tmp/deckhand-lab.lock bench/cluster-scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${1:-3 6 12 24 30 48}
duration=${2:-8}
connections=${3:-4}
per_engine=${4:-10}
# shellcheck source=bench/cluster-lab.sh
source bench/cluster-lab.sh
bench_prepare
binary=$DECKHAND_BINARY
largest=0
for n in $sizes; do [ "$n" -gt "$largest" ] && largest=$n; done
if [ "$largest" -lt 1 ] || [ "$largest" -gt 250 ]; then echo "sizes must be 1 to 250" >&2; exit 2; fi

work=$(mktemp -d /tmp/deckhand-cluster-scale.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; done
    lab_containers_remove deckhand-scale
    lab_release
    rm -rf "$work"
}
trap cleanup EXIT
lab_use "$work/lab"
lab_containers_remove deckhand-scale
lab_containers "$per_engine" deckhand-scale
mapfile -t engines < <(lab_engine_pids)

address() { echo "127.0.2.$1"; }
seeds=$(for i in $(seq 1 "$largest"); do printf '%s:9001,' "$(address "$i")"; done)
seeds=${seeds%,}
"$binary" keygen --out "$work/client.pem" >/dev/null
# Secret mode: the instances all dial out from 127.0.0.1 (their listening address is not
# their source address on loopback), so trust on first use, which admits a probe only
# from an address the cluster address names, would refuse them; a shared secret's
# proofs do not depend on the source address.
secret=bench-scale-$RANDOM$RANDOM
mapfile -t headers < <("$binary" sign --key "$work/client.pem" --secret "$secret")
entry="https://$(address 1):9001"
signed=(-H "${headers[0]}" -H "${headers[1]}")

route=${ROUTE:-containers}
case "$route" in
containers) path="/containers/json?all=1"; agent_env=() ;;
host-info) path="/v2/cluster/host/info"; agent_env=(CAP_HOST_MANAGEMENT=1) ;;
*) echo "bench: ROUTE is containers or host-info, not $route" >&2; exit 2 ;;
esac

start_instance() {
    local i=$1 node=$(( ($1 - 1) % LAB_NODES + 1 ))
    local sock="NODE${node}_SOCK"
    local pin=()
    if [ -n "${PIN_ENTRY:-}" ]; then
        if [ "$i" = 1 ]; then pin=(taskset -c 0); else pin=(taskset -c "1-$(( $(nproc) - 1 ))"); fi
    fi
    "${pin[@]}" env "${agent_env[@]}" AGENT_SECRET="$secret" AGENT_HOST=$(address "$i") AGENT_PORT=9001 AGENT_CLUSTER_ADDR="$seeds" \
        DECKHAND_ENGINE_SOCKET="${!sock}" DECKHAND_VOLUMES_ROOT="$lab_dir/node$node/lib/volumes" \
        DECKHAND_NODE_NAME="node$node-$i" LOG_LEVEL=ERROR "$binary" serve 2>>"$work/agents.log" &
    pids+=($!)
}

members() {
    curl -sk --max-time 5 "${signed[@]}" "$entry/agents" | grep -o '"NodeName"' | wc -l || true
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ { print $2 }') GiB, $(date -u '+%F %H:%M') UTC; $(uname -r)"
echo "cluster: N instances on 127.0.2.x in front of $LAB_NODES lab engines ($per_engine containers each); wrk 1 thread, ${duration}s per measure"
echo "binary: $binary; GET $path"
echo
printf '| members | items | c=1 p50 | c=1 p99 | c=1 req/s | c=1 entry CPU/req | c=1 entry busiest loop | c=%d p50 | c=%d p99 | c=%d req/s | agents CPU/req | engines CPU/req | idle: agents, engines CPU |\n' \
    "$connections" "$connections" "$connections"
echo '|---|---|---|---|---|---|---|---|---|---|---|---|---|'
running=0
for n in $sizes; do
    while [ "$running" -lt "$n" ]; do running=$((running + 1)); start_instance "$running"; done
    # Membership rounds run every 5 s: the newest instances are found within one or two.
    for _ in $(seq 1 300); do
        [ "$(members)" = "$n" ] && break
        sleep 0.2
    done
    [ "$(members)" = "$n" ] || { echo "bench: instance 1 lists $(members) members, not $n" >&2; tail -5 "$work/agents.log" >&2; exit 1; }
    url="$entry$path"
    curl -sk -D "$work/headers" "${signed[@]}" "$url" > "$work/answer.json"
    if grep -qi unreachable "$work/headers"; then echo "bench: unreachable members at N=$n" >&2; cat "$work/headers" >&2; exit 1; fi
    if [ "$route" = host-info ]; then
        items=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["Nodes"]))' "$work/answer.json")
        expected=$n
    else
        items=$(grep -o '"NodeName"' "$work/answer.json" | wc -l)
        expected=$((n * per_engine))
    fi
    [ "$items" = "$expected" ] || { echo "bench: $items items at N=$n, expected $expected" >&2; exit 1; }

    # Idle: nothing but membership probes (every instance asks every address every 5 s).
    idle0=$(cpu_ticks "${pids[@]:0:$n}")
    idle_engines0=$(cpu_ticks "${engines[@]}")
    sleep 10
    idle=$(( $(cpu_ticks "${pids[@]:0:$n}") - idle0 ))
    idle_engines=$(( $(cpu_ticks "${engines[@]}") - idle_engines0 ))

    wrk=(wrk); [ -n "${PIN_ENTRY:-}" ] && wrk=(taskset -c "1-$(( $(nproc) - 1 ))" wrk)
    "${wrk[@]}" -t1 -c1 -d2s "${signed[@]}" "$url" >/dev/null
    entry0=$(cpu_ticks "${pids[0]}")
    thread_ns "${pids[0]}" > "$work/threads0"
    [ -n "${PROFILE:-}" ] && perf record -q -F 1999 -g -p "${pids[0]}" -o "$PROFILE.$n" -- sleep "$duration" 2>/dev/null &
    "${wrk[@]}" -t1 -c1 -d"${duration}s" --latency "${signed[@]}" "$url" > "$work/single.out"
    entry1=$(cpu_ticks "${pids[0]}")
    thread_ns "${pids[0]}" > "$work/threads1"
    busiest_ns=$(awk 'BEGIN { max = 0 } NR == FNR { before[$1] = $2 + 0; next } { d = $2 - before[$1]; if (d > max) max = d } END { printf "%.0f\n", max }' \
        "$work/threads0" "$work/threads1")
    read -r single_rps single_p50 single_p99 single_count < <(wrk_summary "$work/single.out")
    # Each of the entry's busiest threads, on stderr: how a fan-out's work fell on its loops.
    awk 'NR == FNR { before[$1] = $2 + 0; next } { printf "%.0f\n", $2 - before[$1] }' "$work/threads0" "$work/threads1" \
        | sort -rn | head -4 | awk -v n="$n" -v count="$single_count" '{ line = line sprintf(" %.2f", $1 / count / 1000000) } END { print "entry threads at " n ", ms per request:" line > "/dev/stderr" }'

    agents0=$(cpu_ticks "${pids[@]:0:$n}")
    engines0=$(cpu_ticks "${engines[@]}")
    "${wrk[@]}" -t1 -c"$connections" -d"${duration}s" --latency "${signed[@]}" "$url" > "$work/load.out"
    agents1=$(cpu_ticks "${pids[@]:0:$n}")
    engines1=$(cpu_ticks "${engines[@]}")
    read -r load_rps load_p50 load_p99 load_count < <(wrk_summary "$work/load.out")
    tick_us=$((1000000 / $(getconf CLK_TCK)))
    printf '| %d | %d | %.2f ms | %.2f ms | %d | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %d | %.2f ms | %.2f ms | %.1f%%, %.1f%% of a core |\n' \
        "$n" "$items" "$single_p50" "$single_p99" "$single_rps" \
        "$(echo "($entry1 - $entry0) * $tick_us / $single_count / 1000" | bc -l)" \
        "$(echo "$busiest_ns / $single_count / 1000000" | bc -l)" \
        "$load_p50" "$load_p99" "$load_rps" \
        "$(echo "($agents1 - $agents0) * $tick_us / $load_count / 1000" | bc -l)" \
        "$(echo "($engines1 - $engines0) * $tick_us / $load_count / 1000" | bc -l)" \
        "$(echo "$idle * $tick_us / 10000000 * 100" | bc -l)" "$(echo "$idle_engines * $tick_us / 10000000 * 100" | bc -l)"
done
