#!/usr/bin/env bash
# GET /host/info latency, warm (cached inventory, one keep-alive connection) and
# cold (the first request of a freshly started agent: nothing cached), measured as
# the server's share of each request (time to first byte minus the time the request
# was sent), with curl.
#   bench/host-info.sh [warm requests, default 500] [cold starts, default 15]
# DECKHAND_BINARY names the binary to measure (another build, for an A/B); else this
# tree's release build is built and measured.
set -euo pipefail
cd "$(dirname "$0")/.."
warm=${1:-500}
cold=${2:-15}
scripts/setup
binary=${DECKHAND_BINARY:-$(scripts/release-build)}
work=$(mktemp -d /tmp/deckhand-hostinfo.XXXXXX)
agent=
cleanup() { [ -n "$agent" ] && kill "$agent" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$binary" keygen --out "$work/client.pem" >/dev/null
mapfile -t headers < <("$binary" sign --key "$work/client.pem")
start_agent() {
    CAP_HOST_MANAGEMENT=1 DECKHAND_HOST_ROOT=/ AGENT_HOST=127.0.0.1 AGENT_PORT=19401 LOG_LEVEL=ERROR "$binary" serve &
    agent=$!
    for _ in $(seq 1 100); do curl -sk https://127.0.0.1:19401/ping >/dev/null && return; sleep 0.05; done
    echo "agent did not start" >&2; exit 1
}
stop_agent() { kill "$agent"; wait "$agent" 2>/dev/null || true; agent=; }
url=https://127.0.0.1:19401/host/info
fmt='%{time_starttransfer} %{time_pretransfer}\n'
median_p99() { sort -n | awk '{ v[NR] = $1 } END { printf "median %.2f ms, p99 %.2f ms (n=%d)\n", v[int((NR + 1) / 2)], v[int(NR * 0.99 + 0.5)], NR }'; }

for _ in $(seq 1 "$cold"); do
    start_agent
    curl -sk -o /dev/null -w "$fmt" -H "${headers[0]}" -H "${headers[1]}" "$url"
    stop_agent
done | awk '{ printf "%.3f\n", ($1 - $2) * 1000 }' > "$work/cold"

start_agent
args=()
for _ in $(seq 1 "$warm"); do args+=(-o /dev/null "$url"); done
curl -sk -w "$fmt" -H "${headers[0]}" -H "${headers[1]}" "${args[@]}" | tail -n +2 \
    | awk '{ printf "%.3f\n", ($1 - $2) * 1000 }' > "$work/warm"
echo "machine: $(nproc) cores, $(date -u +%F); $(curl -sk -H "${headers[0]}" -H "${headers[1]}" "$url" | grep -o '"Address"' | wc -l) PCI devices"
echo "cold (first request after start): $(median_p99 < "$work/cold")"
echo "warm (cached, keep-alive):        $(median_p99 < "$work/warm")"
