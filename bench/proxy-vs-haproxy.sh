#!/usr/bin/env bash
# Deckhand against HAProxy as a TLS proxy in front of the same engine socket, in one
# run, with wrk: GET /_ping and GET /containers/json?all=1 (20 containers; without
# all=1 the engine lists running containers only, and these are created, not
# started, so the answer would be an empty list). Prints
# requests/s, p50, p99, CPU time per request of each proxy and of the engine, the
# ratios, then Deckhand's idle and loaded RSS.
#   [ROUNDS=5] [DECKHAND_BINARY=path] [ENGINE=tcp-tls|podman] bench/proxy-vs-haproxy.sh [seconds per run, default 10] [connections, default 32]
# DECKHAND_BINARY measures a given build (e.g. an older one) instead of building this tree.
# ENGINE=tcp-tls puts both proxies in front of the engine's TCP port with --tlsverify
# (certificates made here: a CA, the engine's for 127.0.0.1, a client's) instead of
# its socket: HAProxy with `ssl verify required` and the client certificate, Deckhand
# with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH.
# ENGINE=podman puts both in front of Podman's Docker-compatible API instead
# (`podman system service` on a socket, started by scripts/podman under the bench's folder).
# Hold `flock /tmp/deckhand-bench.lock` around it on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-32}
scripts/setup
command -v haproxy >/dev/null && command -v wrk >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy wrk openssl >/dev/null
}
binary=${DECKHAND_BINARY:-$(scripts/release-build)}

work=$(mktemp -d /tmp/deckhand-bench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    scripts/engine stop "$work/engine" || true
    scripts/podman stop "$work/engine" || true
    rm -rf "$work"
}
trap cleanup EXIT

engine_mode=${ENGINE:-socket}
sock="$work/engine/docker.sock"
case "$engine_mode" in
socket)
    scripts/engine start "$work/engine"
    haproxy_server="$sock"
    deckhand_engine=(DECKHAND_ENGINE_SOCKET="$sock")
    ;;
tcp-tls)
    certs="$work/engine-certs"
    mkdir -p "$certs/client"
    ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -days 1 -subj /CN=bench-ca -keyout "$certs/ca-key.pem" -out "$certs/ca.pem" 2>/dev/null
    for name in server client; do
        openssl req "${ec[@]}" -subj "/CN=$name" -keyout "$certs/$name-key.pem" -out "$certs/$name.csr" 2>/dev/null
        if [ "$name" = server ]; then ext="subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"; else ext="extendedKeyUsage=clientAuth\n"; fi
        printf "$ext" > "$certs/$name.ext"
        openssl x509 -req -in "$certs/$name.csr" -CA "$certs/ca.pem" -CAkey "$certs/ca-key.pem" -set_serial "$RANDOM$RANDOM" \
            -days 1 -extfile "$certs/$name.ext" -out "$certs/$name-cert.pem" 2>/dev/null
    done
    cp "$certs/ca.pem" "$certs/client/ca.pem"
    cp "$certs/client-cert.pem" "$certs/client/cert.pem"
    cp "$certs/client-key.pem" "$certs/client/key.pem"
    cat "$certs/client-cert.pem" "$certs/client-key.pem" > "$certs/client/haproxy.pem"
    engine_port=19103
    scripts/engine start "$work/engine" --tlsverify --tlscacert "$certs/ca.pem" \
        --tlscert "$certs/server-cert.pem" --tlskey "$certs/server-key.pem" -H "tcp://127.0.0.1:$engine_port"
    haproxy_server="127.0.0.1:$engine_port ssl verify required ca-file $certs/ca.pem crt $certs/client/haproxy.pem"
    deckhand_engine=(DECKHAND_ENGINE_SOCKET="tcp://127.0.0.1:$engine_port" DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH="$certs/client")
    ;;
podman)
    sock="$work/engine/podman.sock"
    scripts/podman start "$work/engine"
    haproxy_server="$sock"
    deckhand_engine=(DECKHAND_ENGINE_SOCKET="$sock")
    ;;
*)
    echo "bench: ENGINE is socket, tcp-tls or podman, not $engine_mode" >&2
    exit 2
    ;;
esac
if [ "$engine_mode" = podman ]; then scripts/podman image "$work/engine"; else scripts/engine image "$work/engine"; fi
for i in $(seq 1 20); do docker -H "unix://$sock" create --name "bench-$i" busybox:local true >/dev/null; done

# HAProxy: TLS in front of the engine (socket or TLS port), one thread, keep-alive both sides.
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
    server engine $haproxy_server
CFG
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
pids+=($!)
haproxy_pid=$!

"$binary" keygen --out "$work/client.pem" >/dev/null
mapfile -t headers < <("$binary" sign --key "$work/client.pem")
env "${deckhand_engine[@]}" AGENT_HOST=127.0.0.1 AGENT_PORT=19102 LOG_LEVEL=ERROR "$binary" serve &
pids+=($!)
deckhand_pid=$!
for _ in $(seq 1 50); do curl -sk https://127.0.0.1:19102/ping >/dev/null && break; sleep 0.1; done
for _ in $(seq 1 50); do curl -sk https://127.0.0.1:19101/_ping >/dev/null && break; sleep 0.1; done
# RSS as the kernel counts it (VmRSS, MB = 2^20 bytes), split into anonymous
# memory and mapped file pages (code). "Idle" is 2 s after the first /ping above
# (one TLS handshake, one request) with nothing else asked.
rss() { awk '/VmRSS|RssAnon|RssFile/ { v[$1] = $2 / 1024 } END { printf "%.1f MB (anon %.1f, file %.1f)", v["VmRSS:"], v["RssAnon:"], v["RssFile:"] }' "/proc/$1/status"; }
sleep 2
idle_rss=$(rss "$deckhand_pid")

# One wrk run against one proxy → "requests/s p50_ms p99_ms proxy_us engine_us":
# latencies from wrk, and the CPU time (user + system, from /proc/PID/stat) the
# proxy and the engine spent per request. CPU per request does not depend on how
# much of the machine other processes take, so it survives a busy machine better
# than requests/s does.
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
engine_pid=$(cat "$work/engine/pid")
measure() {
    local url=$1 proxy_pid=$2
    local p0 e0 p1 e1
    p0=$(cpu_ticks "$proxy_pid"); e0=$(cpu_ticks "$engine_pid")
    wrk -t1 -c"$connections" -d"${duration}s" --latency -H "${headers[0]}" -H "${headers[1]}" "$url" > "$work/wrk.out"
    p1=$(cpu_ticks "$proxy_pid"); e1=$(cpu_ticks "$engine_pid")
    if grep -q 'Non-2xx' "$work/wrk.out"; then echo "bench: non-2xx answers from $url" >&2; cat "$work/wrk.out" >&2; exit 1; fi
    awk -v p=$((p1 - p0)) -v e=$((e1 - e0)) -v hz="$hz" '
        function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
        /requests in/ { n = $1 }
        /Requests\/sec/ { rps = $2 }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        END { printf "%.0f %.2f %.2f %.1f %.1f\n", rps, p50, p99, p / hz * 1e6 / n, e / hz * 1e6 / n }' "$work/wrk.out"
}
# The median of column $2 of file $1.
median() { sort -n -k"$2","$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

rounds=${ROUNDS:-5}
echo "engine: $engine_mode"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(date -u '+%F %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk: 1 thread, $connections connections, ${duration}s per run, $rounds alternating rounds, medians; HAProxy: 1 thread; Deckhand: $(ls "/proc/$deckhand_pid/task" | wc -l) threads"
echo "cpu µs/req: CPU time (user+system) per request of the proxy, and of the engine behind it"
printf '%-24s %-9s %9s %8s %8s %12s %13s\n' path proxy req/s p50_ms p99_ms proxy_cpu_us engine_cpu_us
for path in /_ping '/containers/json?all=1'; do
    # Warm both (TLS sessions, engine caches), then alternate the two proxies for
    # several rounds and keep each column's median, so drift on a shared machine
    # (other processes, the engine's own state) hits both alike.
    wrk -t1 -c"$connections" -d2s "https://127.0.0.1:19101$path" >/dev/null
    wrk -t1 -c"$connections" -d2s -H "${headers[0]}" -H "${headers[1]}" "https://127.0.0.1:19102$path" >/dev/null
    : > "$work/h"; : > "$work/d"
    for _ in $(seq 1 "$rounds"); do
        measure "https://127.0.0.1:19101$path" "$haproxy_pid" >> "$work/h"
        measure "https://127.0.0.1:19102$path" "$deckhand_pid" >> "$work/d"
    done
    for side in h d; do
        name=haproxy; [ "$side" = d ] && name=deckhand
        printf '%-24s %-9s %9s %8s %8s %12s %13s   (req/s per round: %s)\n' "$path" "$name" \
            "$(median "$work/$side" 1)" "$(median "$work/$side" 2)" "$(median "$work/$side" 3)" \
            "$(median "$work/$side" 4)" "$(median "$work/$side" 5)" "$(cut -d' ' -f1 "$work/$side" | tr '\n' ' ')"
    done
    awk -v d="$(median "$work/d" 1)" -v h="$(median "$work/h" 1)" -v dc="$(median "$work/d" 4)" -v hc="$(median "$work/h" 4)" -v p="$path" \
        'BEGIN { printf "%-24s ratio     %8.2fx of HAProxy requests/s; Deckhand CPU per request %.2fx that of HAProxy\n", p, d / h, dc / hc }'
done
echo "deckhand RSS: idle $idle_rss, after load $(rss "$deckhand_pid")"
