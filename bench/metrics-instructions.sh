#!/usr/bin/env bash
# Instructions per request with metrics off and on (and, with BASE_BINARY, in a build
# from before metrics existed), counted by callgrind: repeatable whatever else the
# machine does, where requests/s on a shared machine is not. One agent in front of a
# private engine serves N and then N + EXTRA signed GET /_ping over one keep-alive
# connection (curl); the difference of the two totals, over EXTRA, is one request's
# instructions, start-up and the TLS handshake cancelling out.
#   [DECKHAND_BINARY=path] [BASE_BINARY=path] bench/metrics-instructions.sh [N, default 200] [EXTRA, default 1000]
set -euo pipefail
cd "$(dirname "$0")/.."
first=${1:-200}
extra=${2:-1000}
command -v valgrind >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
binary=${DECKHAND_BINARY:-$(scripts/release-build)}

work=$(mktemp -d /tmp/deckhand-metrics-instr.XXXXXX)
agent=""
cleanup() {
    [ -n "$agent" ] && kill "$agent" 2>/dev/null || true
    scripts/engine stop "$work/engine" || true
    rm -rf "$work"
}
trap cleanup EXIT
scripts/engine start "$work/engine"
"$binary" keygen --out "$work/client.pem" >/dev/null
mapfile -t headers < <("$binary" sign --key "$work/client.pem")

# Total instructions of one agent run that served $2 requests; $1 names the setting.
run() {
    local setting=$1 count=$2 run_binary=$binary metrics=()
    [ "$setting" = on ] && metrics=(DECKHAND_METRICS_ADDR=127.0.0.1:19503)
    [ "$setting" = base ] && run_binary=$BASE_BINARY
    env "${metrics[@]}" AGENT_HOST=127.0.0.1 AGENT_PORT=19502 DECKHAND_ENGINE_SOCKET="$work/engine/docker.sock" LOG_LEVEL=ERROR \
        valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$run_binary" serve 2>"$work/valgrind.log" &
    agent=$!
    for _ in $(seq 1 600); do curl -sk -o /dev/null https://127.0.0.1:19502/ping && break; sleep 0.1; done
    for i in $(seq 1 "$count"); do printf 'url = "https://127.0.0.1:19502/_ping"\noutput = "/dev/null"\n'; done > "$work/urls"
    curl -sk --http1.1 -H "${headers[0]}" -H "${headers[1]}" -K "$work/urls"
    kill -INT "$agent"
    wait "$agent" || true
    agent=""
    awk '/^summary:|^totals:/ { print $2; exit }' "$work/cg.out"
}

settings="off on"
[ -n "${BASE_BINARY:-}" ] && settings="base off on"
echo "machine: $(nproc) cores, $(date -u '+%F %H:%M UTC'); $first then $((first + extra)) signed GET /_ping on one connection; callgrind"
printf '%-6s %14s %14s %12s\n' setting "I($first)" "I($((first + extra)))" instr/request
for setting in $settings; do
    small=$(run "$setting" "$first")
    large=$(run "$setting" $((first + extra)))
    per=$(( (large - small) / extra ))
    printf '%-6s %14s %14s %12s\n' "$setting" "$small" "$large" "$per"
    echo "$setting $per" >> "$work/per"
done
awk '{ v[$1] = $2 } END {
    printf "on/off: %.4f (%+.2f%%)\n", v["on"] / v["off"], (v["on"] / v["off"] - 1) * 100
    if ("base" in v) printf "off/base: %.4f (%+.2f%%)\n", v["off"] / v["base"], (v["off"] / v["base"] - 1) * 100
}' "$work/per"
