#!/usr/bin/env bash
# Deckhand against HAProxy as a TLS proxy in front of the same engine socket, in one
# run, with wrk: GET /_ping and GET /containers/json (20 containers). Prints
# requests/s, p50, p99 and the ratios, then Deckhand's idle and loaded RSS.
#   bench/proxy-vs-haproxy.sh [seconds per run, default 10] [connections, default 32]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-32}
scripts/setup
command -v haproxy >/dev/null && command -v wrk >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy wrk openssl >/dev/null
}
swift build -c release --product deckhand >/dev/null
binary=$(swift build -c release --show-bin-path)/deckhand

work=$(mktemp -d /tmp/deckhand-bench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    scripts/engine stop "$work/engine" || true
    rm -rf "$work"
}
trap cleanup EXIT

scripts/engine start "$work/engine"
scripts/engine image "$work/engine"
sock="$work/engine/docker.sock"
for i in $(seq 1 20); do docker -H "unix://$sock" create --name "bench-$i" busybox:local true >/dev/null; done

# HAProxy: TLS in front of the engine socket, one thread, keep-alive both sides.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=haproxy -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat "$work/cert.pem" "$work/key.pem" > "$work/haproxy.pem"
cat > "$work/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
frontend fe
    bind 127.0.0.1:19101 ssl crt $work/haproxy.pem
    default_backend engine
backend engine
    http-reuse always
    server engine $sock
CFG
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
pids+=($!)

"$binary" keygen --out "$work/client.pem" >/dev/null
mapfile -t headers < <("$binary" sign --key "$work/client.pem")
DECKHAND_ENGINE_SOCKET=$sock AGENT_HOST=127.0.0.1 AGENT_PORT=19102 LOG_LEVEL=ERROR "$binary" serve &
pids+=($!)
deckhand_pid=$!
for _ in $(seq 1 50); do curl -sk https://127.0.0.1:19102/ping >/dev/null && break; sleep 0.1; done
for _ in $(seq 1 50); do curl -sk https://127.0.0.1:19101/_ping >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {printf "%.1f MB", $2/1024}' "/proc/$1/status"; }
idle_rss=$(rss "$deckhand_pid")

# wrk → "requests/s p50 p99" (latencies in ms)
measure() {
    local url=$1
    wrk -t1 -c"$connections" -d"${duration}s" --latency -H "${headers[0]}" -H "${headers[1]}" "$url" > "$work/wrk.out"
    if grep -q 'Non-2xx' "$work/wrk.out"; then echo "bench: non-2xx answers from $url" >&2; cat "$work/wrk.out" >&2; exit 1; fi
    awk '
        function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
        /Requests\/sec/ { rps = $2 }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        END { printf "%.0f %.2f %.2f\n", rps, p50, p99 }' "$work/wrk.out"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(date -u +%F)"
echo "wrk: 1 thread, $connections connections, ${duration}s per run, ${ROUNDS:-3} alternating rounds; HAProxy: 1 thread; Deckhand: $(nproc) event loops"
printf '%-18s %-9s %10s %9s %9s\n' path proxy req/s p50_ms p99_ms
rounds=${ROUNDS:-3}
for path in /_ping /containers/json; do
    # Warm both (TLS sessions, engine caches), then alternate the two proxies for
    # several rounds and keep each one's median, so drift on a shared machine
    # (other processes, the engine's own state) hits both alike.
    wrk -t1 -c"$connections" -d2s "https://127.0.0.1:19101$path" >/dev/null
    wrk -t1 -c"$connections" -d2s -H "${headers[0]}" -H "${headers[1]}" "https://127.0.0.1:19102$path" >/dev/null
    : > "$work/h"; : > "$work/d"
    for _ in $(seq 1 "$rounds"); do
        measure "https://127.0.0.1:19101$path" >> "$work/h"
        measure "https://127.0.0.1:19102$path" >> "$work/d"
    done
    read -r h_rps h_p50 h_p99 < <(sort -n "$work/h" | awk -v n="$rounds" 'NR == int((n + 1) / 2)')
    read -r d_rps d_p50 d_p99 < <(sort -n "$work/d" | awk -v n="$rounds" 'NR == int((n + 1) / 2)')
    printf '%-18s %-9s %10s %9s %9s   (rounds: %s)\n' "$path" haproxy "$h_rps" "$h_p50" "$h_p99" "$(cut -d' ' -f1 "$work/h" | tr '\n' ' ')"
    printf '%-18s %-9s %10s %9s %9s   (rounds: %s)\n' "$path" deckhand "$d_rps" "$d_p50" "$d_p99" "$(cut -d' ' -f1 "$work/d" | tr '\n' ' ')"
    awk -v d="$d_rps" -v h="$h_rps" -v p="$path" 'BEGIN { printf "%-18s ratio     %10.2fx of HAProxy requests/s (medians)\n", p, d/h }'
done
echo "deckhand RSS: idle $idle_rss, after load $(rss "$deckhand_pid")"
