#!/usr/bin/env bash
# Instructions per proxied signed GET /_ping of each binary given (default: this tree's
# release build), counted by callgrind with instrumentation on only while one curl sends
# COUNT requests on one keep-alive connection: start-up is not counted, the one TLS
# handshake is spread over COUNT. Repeatable to about 0.1% whatever else the machine
# does (metrics-instructions.sh's difference of two whole runs moves by a few percent
# for this path). TOP=n also lists the n functions of Agent and Proxy that cost the most
# per request, callees included.
#   [COUNT=1000] [TOP=0] bench/ping-instructions.sh [binary ...]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-1000}
top=${TOP:-0}
command -v valgrind >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
[ $# -gt 0 ] || set -- "$(scripts/release-build)"

work=$(mktemp -d /tmp/deckhand-ping-instr.XXXXXX)
# An agent still running (the script stopped half-way) is this shell's only job.
trap 'kill $(jobs -p) 2>/dev/null || true; scripts/engine stop "$work/engine" >/dev/null || true; rm -rf "$work"' EXIT
scripts/engine start "$work/engine" >/dev/null
"$1" keygen --out "$work/client.pem" >/dev/null
mapfile -t headers < <("$1" sign --key "$work/client.pem")
for _ in $(seq 1 "$count"); do printf 'url = "https://127.0.0.1:19512/_ping"\noutput = "/dev/null"\n'; done > "$work/urls"

echo "$(date -u '+%F %H:%M UTC'); $count signed GET /_ping through the agent to a private engine, one connection; callgrind"
for binary in "$@"; do
    AGENT_HOST=127.0.0.1 AGENT_PORT=19512 DECKHAND_ENGINE_SOCKET="$work/engine/docker.sock" LOG_LEVEL=ERROR \
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/cg.out" "$binary" serve 2>"$work/valgrind.log" &
    agent=$!
    for _ in $(seq 1 600); do curl -sk -o /dev/null https://127.0.0.1:19512/ping && break; sleep 0.1; done
    callgrind_control -i on "$agent" >/dev/null 2>&1
    curl -sk --http1.1 -H "${headers[0]}" -H "${headers[1]}" -K "$work/urls"
    callgrind_control -i off "$agent" >/dev/null 2>&1
    kill -INT "$agent"
    wait "$agent" || true
    total=$(callgrind_annotate "$work/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
    printf '%-50s %10d instructions/request\n' "$binary" $((total / count))
    if [ "$top" -gt 0 ]; then
        callgrind_annotate --inclusive=yes "$work/cg.out" 2>/dev/null |
            awk -v n="$count" -v top="$top" '$3 ~ /^\?\?\?:\$s5(Agent|Proxy)/ && $3 !~ /TW$/ && shown++ < top {
                gsub(",", "", $1); sub(/^\?\?\?:/, "", $3); printf "    %8d  %s\n", $1 / n, $3 }' |
            swift demangle --simplified
    fi
done
