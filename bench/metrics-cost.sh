#!/usr/bin/env bash
# What DECKHAND_METRICS_ADDR costs: the same release binary with metrics off and on,
# measured alternately with wrk on GET /_ping and on an aggregated
# GET /containers/json?all=1. Two clusters of 3 agents stand in front of one
# private engine (made a one-node Swarm on loopback, so that lists are aggregated;
# no lab needed): one set with metrics off, one with every member's metrics on and
# its entry scraped every second, as Prometheus would. Each round measures both
# sets, in alternating order, so that drift on a shared machine hits both alike;
# the medians and the on/off ratios of requests/s and of the agents' CPU time per
# request (summed over the set's 3 agents) are printed.
# With BASE_BINARY=path (a build from before metrics existed) the second set runs that
# binary instead, metrics off too: what the disabled metrics cost against no metrics code.
# PATHS="/_ping" measures only those paths.
#   [ROUNDS=5] [PATHS=...] [DECKHAND_BINARY=path] [BASE_BINARY=path] bench/metrics-cost.sh [seconds per run, default 8] [connections, default 32]
# Hold `flock /tmp/deckhand-bench.lock` around it on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-8}
connections=${2:-32}
rounds=${ROUNDS:-5}
scripts/setup >/dev/null
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
binary=${DECKHAND_BINARY:-$(scripts/release-build)}
# The second set: this binary with metrics on, or BASE_BINARY with them off.
second=on; [ -n "${BASE_BINARY:-}" ] && second=base

work=$(mktemp -d /tmp/deckhand-metrics-cost.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; done
    scripts/engine stop "$work/engine" || true
    rm -rf "$work"
}
trap cleanup EXIT

sock="$work/engine/docker.sock"
scripts/engine start "$work/engine"
scripts/engine image "$work/engine"
# A Swarm of one on loopback, on a port of its own (not 2377, which a lab may hold).
docker -H "unix://$sock" swarm init --advertise-addr 127.0.0.1:24377 --listen-addr 127.0.0.1:24377 >/dev/null
for i in $(seq 1 20); do docker -H "unix://$sock" create --name "bench-$i" busybox:local true >/dev/null; done

"$binary" keygen --out "$work/client.pem" >/dev/null
mapfile -t headers < <("$binary" sign --key "$work/client.pem")
signed=(-H "${headers[0]}" -H "${headers[1]}")

# Set "off": ports 19301-19303; the second set: 19311-19313, metrics (when on) on 19321-19323.
declare -A base=([off]=19300 [$second]=19310)
declare -A agent_pids=([off]="" [$second]="")
for set in off $second; do
    seeds=$(for i in 1 2 3; do printf '127.0.0.1:%s,' $((base[$set] + i)); done)
    for i in 1 2 3; do
        metrics=()
        [ "$set" = on ] && metrics=(DECKHAND_METRICS_ADDR=127.0.0.1:$((19320 + i)))
        run=$binary; [ "$set" = base ] && run=$BASE_BINARY
        env "${metrics[@]}" AGENT_HOST=127.0.0.1 AGENT_PORT=$((base[$set] + i)) AGENT_CLUSTER_ADDR="${seeds%,}" \
            DECKHAND_ENGINE_SOCKET="$sock" DECKHAND_NODE_NAME="$set-$i" LOG_LEVEL=ERROR "$run" serve 2>>"$work/agents.log" &
        pids+=($!)
        agent_pids[$set]+="$! "
    done
done
# Each set's entry lists its 3 members before anything is measured.
for set in off $second; do
    entry="https://127.0.0.1:$((base[$set] + 1))"
    for _ in $(seq 1 100); do
        members=$(curl -sk "${signed[@]}" "$entry/agents" | grep -o '"NodeName"' | wc -l || true)
        [ "$members" = 3 ] && break
        sleep 0.2
    done
    [ "$members" = 3 ] || { echo "bench: set $set has $members members; agents' log:" >&2; tail -20 "$work/agents.log" >&2; exit 1; }
done
# Prometheus' part: a scrape of the "on" entry every second, all along.
if [ "$second" = on ]; then
    (while sleep 1; do curl -s -o /dev/null http://127.0.0.1:19321/metrics; done) &
    pids+=($!)
fi

hz=$(getconf CLK_TCK)
cpu_ticks() { local total=0 pid; for pid in $1; do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done; echo "$total"; }
# One wrk run → "requests/s p50_ms p99_ms agents_cpu_us_per_request".
measure() {
    local url=$1 set=$2 c0 c1
    c0=$(cpu_ticks "${agent_pids[$set]}")
    wrk -t1 -c"$connections" -d"${duration}s" --latency "${signed[@]}" "$url" > "$work/wrk.out"
    c1=$(cpu_ticks "${agent_pids[$set]}")
    if grep -q 'Non-2xx' "$work/wrk.out"; then echo "bench: non-2xx answers from $url" >&2; cat "$work/wrk.out" >&2; exit 1; fi
    awk -v c=$((c1 - c0)) -v hz="$hz" '
        function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
        /requests in/ { n = $1 }
        /Requests\/sec/ { rps = $2 }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        END { printf "%.0f %.2f %.2f %.1f\n", rps, p50, p99, c / hz * 1e6 / n }' "$work/wrk.out"
}
median() { sort -n -k"$2","$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(date -u '+%F %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk: 1 thread, $connections connections, ${duration}s per run, $rounds rounds alternating off/$second (order swapped each round), medians"
[ "$second" = base ] && echo "off: $binary (metrics off); base: $BASE_BINARY"
echo "cpu µs/req: CPU time (user+system) of the set's 3 agents per request"
printf '%-24s %-4s %9s %8s %8s %10s\n' path set req/s p50_ms p99_ms cpu_us/req
for path in ${PATHS:-/_ping /containers/json?all=1}; do
    for set in off $second; do wrk -t1 -c"$connections" -d2s "${signed[@]}" "https://127.0.0.1:$((base[$set] + 1))$path" >/dev/null; done
    : > "$work/off"; : > "$work/$second"
    for round in $(seq 1 "$rounds"); do
        order="off $second"; [ $((round % 2)) = 0 ] && order="$second off"
        for set in $order; do measure "https://127.0.0.1:$((base[$set] + 1))$path" "$set" >> "$work/$set"; done
    done
    for set in off $second; do
        printf '%-24s %-4s %9s %8s %8s %10s   (req/s per round: %s)\n' "$path" "$set" \
            "$(median "$work/$set" 1)" "$(median "$work/$set" 2)" "$(median "$work/$set" 3)" "$(median "$work/$set" 4)" \
            "$(cut -d' ' -f1 "$work/$set" | tr '\n' ' ')"
    done
    # on/off, or, against a base build, off/base (this build's disabled metrics against none).
    if [ "$second" = on ]; then num=on den=off; else num=off den=base; fi
    awk -v n="$(median "$work/$num" 1)" -v d="$(median "$work/$den" 1)" -v nc="$(median "$work/$num" 4)" -v dc="$(median "$work/$den" 4)" -v p="$path" -v r="$num/$den" \
        'BEGIN { printf "%-24s %-9s requests/s %.3f (%+.1f%%), CPU per request %.3f (%+.1f%%)\n", p, r, n / d, (n / d - 1) * 100, nc / dc, (nc / dc - 1) * 100 }'
done
if [ "$second" = on ]; then
    echo "series on the \"on\" entry after the runs: $(curl -s http://127.0.0.1:19321/metrics | grep -vc '^#')"
fi
