#!/usr/bin/env bash
# Aggregated GET /containers/json over the real 3-node lab Swarm (scripts/swarm-lab):
# one release Deckhand per node, wrk against one of them. Prints requests/s, p50 and
# p99. The original agent's figure on the same lab (measured when the issue was
# filed, not re-run here: no Go toolchain or image offline) was 82 requests/s at a
# 97 ms median.
#   bench/cluster.sh [seconds, default 10] [connections, default 8] [containers per node, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-8}
per_node=${3:-10}
scripts/setup
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
swift build -c release --product deckhand >/dev/null
binary=$(swift build -c release --show-bin-path)/deckhand

work=$(mktemp -d /tmp/deckhand-cluster-bench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    scripts/swarm-lab down "$work/lab" >/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
scripts/swarm-lab up "$work/lab" >/dev/null
# shellcheck disable=SC1091
source "$work/lab/env"
export SWARM_LAB_DIR="$work/lab"
seeds="$NODE1_ADDR:9001,$NODE2_ADDR:9001,$NODE3_ADDR:9001"
for n in 1 2 3; do
    sock_var="NODE${n}_SOCK"; addr_var="NODE${n}_ADDR"
    for i in $(seq 1 "$per_node"); do docker -H "unix://${!sock_var}" create --name "bench-$n-$i" busybox:local true >/dev/null; done
    scripts/swarm-lab exec "$n" env AGENT_HOST="${!addr_var}" AGENT_PORT=9001 AGENT_CLUSTER_ADDR="$seeds" LOG_LEVEL=ERROR "$binary" serve &
    pids+=($!)
done
"$binary" keygen --out "$work/client.pem" >/dev/null
mapfile -t headers < <("$binary" sign --key "$work/client.pem")
url="https://$NODE1_ADDR:9001/containers/json?all=1"
# shellcheck source=bench/lab.sh
source bench/lab.sh
wait_for_cluster "$NODE1_ADDR:9001" "${headers[0]}" "${headers[1]}"
items=$(curl -sk -H "${headers[0]}" -H "${headers[1]}" "$url" | grep -o '"NodeName"' | wc -l)
echo "machine: $(nproc) cores, $(date -u +%F); 3 nodes, $items containers in one aggregated answer"
wrk -t1 -c"$connections" -d2s -H "${headers[0]}" -H "${headers[1]}" "$url" >/dev/null
wrk -t1 -c"$connections" -d"${duration}s" --latency -H "${headers[0]}" -H "${headers[1]}" "$url" > "$work/wrk.out"
grep -q 'Non-2xx' "$work/wrk.out" && { echo "bench: non-2xx answers" >&2; cat "$work/wrk.out" >&2; exit 1; }
awk -v c="$connections" '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    END { printf "aggregated /containers/json: %.0f requests/s, p50 %.2f ms, p99 %.2f ms (wrk 1 thread, %d connections)\n", rps, p50, p99, c
          printf "vs the original agent on this lab (82 requests/s, 97 ms median): %.1fx requests/s\n", rps / 82 }' "$work/wrk.out"
