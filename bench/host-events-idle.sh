#!/usr/bin/env bash
# The idle cost of hardware events: CPU time (utime + stime from /proc/PID/stat, in
# clock ticks of 10 ms) an agent uses over N seconds while nothing changes, with host
# management off, on with no client, and on with two event streams open (this node's
# and the fleet's). The three agents run at
# once on the machine's own udev (host root /); nothing is injected.
#   bench/host-events-idle.sh [seconds, default 60] [binary, default the release build]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
binary=${2:-}
if [ -z "$binary" ]; then scripts/setup; binary=$(scripts/release-build); fi
work=$(mktemp -d /tmp/deckhand-events-idle.XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

"$binary" keygen --out "$work/client.pem" >/dev/null
mapfile -t headers < <("$binary" sign --key "$work/client.pem")
engine=${DECKHAND_ENGINE_SOCKET:-/var/run/docker.sock}
start_agent() { # port, host management
    CAP_HOST_MANAGEMENT=$2 DECKHAND_HOST_ROOT=/ DECKHAND_ENGINE_SOCKET=$engine AGENT_HOST=127.0.0.1 AGENT_PORT=$1 LOG_LEVEL=ERROR "$binary" serve &
    pids+=($!)
    for _ in $(seq 1 100); do curl -sk "https://127.0.0.1:$1/ping" >/dev/null && return; sleep 0.05; done
    echo "agent did not start" >&2; exit 1
}
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
start_agent 19451 0; off=${pids[-1]}
start_agent 19452 1; on=${pids[-1]}
start_agent 19453 1; streaming=${pids[-1]}
for path in /v2/host/events /v2/cluster/host/events; do
    name=$work/stream${#pids[@]}
    curl -skN -H "${headers[0]}" -H "${headers[1]}" -D "$name.head" -o "$name.body" "https://127.0.0.1:19453$path" &
    pids+=($!)
done
sleep 2  # start-up (pci.ids, the first subscriptions) is not idle time
declare -A before
for pid in $off $on $streaming; do before[$pid]=$(ticks "$pid"); done
sleep "$seconds"
for name in off on streaming; do
    pid=${!name}
    printf '%-28s %3d ticks in %ss\n' "host management $name" $(( $(ticks "$pid") - ${before[$pid]} )) "$seconds"
done
echo "streams: $(head -qn1 "$work"/*.head | tr -d '\r' | paste -sd, -); lines received while idle: $(cat "$work"/*.body 2>/dev/null | wc -l)"
