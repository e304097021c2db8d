#!/usr/bin/env bash
# Aggregated GET /containers/json over the real 3-node lab Swarm (scripts/swarm-lab):
# one release Deckhand per node, inside the node's namespaces, wrk against node 1's.
# Prints requests/s, p50 and p99, and the agents' and engines' CPU time per request
# (from /proc, which survives a busy machine better than wall-clock figures).
# The original agent's figure on the same lab (measured when the issue was filed,
# not re-run here: no Go toolchain or image offline) was 82 requests/s at a 97 ms
# median.
#   bench/cluster.sh [seconds, default 10] [connections, default 8]
#                    [containers per node, default 10] [rounds, default 1]
# With DECKHAND_BASELINE=/path/to/an/older/deckhand, each round runs the baseline
# and then this tree's build, and the medians of both are compared (A/B).
# ROUTE=host-info measures the fleet inventory, GET /v2/cluster/host/info (every agent
# with CAP_HOST_MANAGEMENT=1), instead of the aggregated container list.
# LAB_IMAGE_REF=id creates the containers from the image's ID instead of its name
# (see bench/cluster-lab.sh: the engines' share of the work then falls by about 3x).
# Needs root and the lab (the one that is up is used; else a private one is brought
# up and taken down). On a shared machine hold the lab lock, e.g.
#   flock /tmp/deckhand-lab.lock bench/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-8}
per_node=${3:-10}
rounds=${4:-1}
# shellcheck source=bench/cluster-lab.sh
source bench/cluster-lab.sh
bench_prepare
binaries=("$DECKHAND_BINARY")
[ -n "${DECKHAND_BASELINE:-}" ] && binaries=("$DECKHAND_BASELINE" "$DECKHAND_BINARY")

work=$(mktemp -d /tmp/deckhand-cluster-bench.XXXXXX)
pids=()
stop_agents() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done; done
    pids=()
}
cleanup() {
    stop_agents
    lab_containers_remove deckhand-bench
    lab_release
    rm -rf "$work"
}
trap cleanup EXIT
lab_use "$work/lab"
lab_containers_remove deckhand-bench
lab_containers "$per_node" deckhand-bench
mapfile -t engines < <(lab_engine_pids)
seeds="$NODE1_ADDR:9001,$NODE2_ADDR:9001,$NODE3_ADDR:9001"
"${binaries[0]}" keygen --out "$work/client.pem" >/dev/null
mapfile -t headers < <("${binaries[0]}" sign --key "$work/client.pem")
signed=(-H "${headers[0]}" -H "${headers[1]}")
route=${ROUTE:-containers}
case "$route" in
containers) url="https://$NODE1_ADDR:9001/containers/json?all=1"; agent_env=() ;;
host-info) url="https://$NODE1_ADDR:9001/v2/cluster/host/info"; agent_env=(CAP_HOST_MANAGEMENT=1) ;;
*) echo "bench: ROUTE is containers or host-info, not $route" >&2; exit 2 ;;
esac
tick_us=$((1000000 / $(getconf CLK_TCK)))

# `measure BINARY LABEL`: one round; appends "rps p50 p99 agents-us engines-us" to $work/LABEL.
measure() {
    local binary=$1 label=$2 n addr count=0
    for n in 1 2 3; do
        addr="NODE${n}_ADDR"
        scripts/swarm-lab exec "$n" env "${agent_env[@]}" AGENT_HOST="${!addr}" AGENT_PORT=9001 AGENT_CLUSTER_ADDR="$seeds" LOG_LEVEL=ERROR "$binary" serve &
        pids+=($!)
    done
    for _ in $(seq 1 100); do
        count=$(curl -sk "${signed[@]}" "https://$NODE1_ADDR:9001/agents" | grep -o NodeName | wc -l || true)
        [ "$count" = 3 ] && break
        sleep 0.2
    done
    [ "$count" = 3 ] || { echo "bench: the agents did not form a cluster" >&2; exit 1; }
    if [ "$route" = host-info ]; then
        # Every node's inventory, nobody unreachable.
        count=$(curl -sk "${signed[@]}" "$url" | python3 -c 'import json, sys; d = json.load(sys.stdin); print(len(d["Nodes"]) if not d["UnreachableNodes"] else -1)' || true)
        [ "$count" = 3 ] || { echo "bench: $count nodes in the fleet inventory, expected 3 and none unreachable" >&2; exit 1; }
    else
        count=$(curl -sk "${signed[@]}" "$url" | grep -o '"NodeName"' | wc -l || true)
        [ "$count" = $((3 * per_node)) ] || { echo "bench: $count items in the aggregated answer, expected $((3 * per_node))" >&2; exit 1; }
    fi
    wrk -t1 -c"$connections" -d2s "${signed[@]}" "$url" >/dev/null
    local agents0 engines0 agents1 engines1 rps p50 p99 requests
    agents0=$(cpu_ticks "${pids[@]}")
    engines0=$(cpu_ticks "${engines[@]}")
    wrk -t1 -c"$connections" -d"${duration}s" --latency "${signed[@]}" "$url" > "$work/wrk.out"
    agents1=$(cpu_ticks "${pids[@]}")
    engines1=$(cpu_ticks "${engines[@]}")
    stop_agents
    read -r rps p50 p99 requests < <(wrk_summary "$work/wrk.out")
    echo "$rps $p50 $p99 $(( (agents1 - agents0) * tick_us / requests )) $(( (engines1 - engines0) * tick_us / requests ))" >> "$work/$label"
    printf '%-9s %6d requests/s  p50 %6.2f ms  p99 %6.2f ms  agents %4d µs/request  engines %4d µs/request\n' \
        "$label" "$rps" "$p50" "$p99" "$(( (agents1 - agents0) * tick_us / requests ))" "$(( (engines1 - engines0) * tick_us / requests ))"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
summary() {
    local label=$1
    printf '%-9s median of %d: %6.0f requests/s  p50 %6.2f ms  p99 %6.2f ms  agents %4.0f µs/request  engines %4.0f µs/request\n' "$label" "$rounds" \
        "$(cut -d' ' -f1 "$work/$label" | median)" "$(cut -d' ' -f2 "$work/$label" | median)" "$(cut -d' ' -f3 "$work/$label" | median)" \
        "$(cut -d' ' -f4 "$work/$label" | median)" "$(cut -d' ' -f5 "$work/$label" | median)"
}

echo "machine: $(nproc) cores, $(date -u '+%F %H:%M') UTC; $url; 3 nodes, $per_node containers each (created from the image's ${LAB_IMAGE_REF:-name}); wrk 1 thread, $connections connections, ${duration}s"
for _ in $(seq 1 "$rounds"); do
    if [ ${#binaries[@]} = 2 ]; then measure "${binaries[0]}" baseline; fi
    measure "$DECKHAND_BINARY" deckhand
done
echo
[ ${#binaries[@]} = 2 ] && summary baseline
summary deckhand
awk '{ print $1 }' "$work/deckhand" | median | awk '{ printf "vs the original agent on this lab (82 requests/s, 97 ms median): %.1fx requests/s\n", $1 / 82 }'
