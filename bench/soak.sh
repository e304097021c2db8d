#!/usr/bin/env bash
# Soak: a release Deckhand on the shared private engine and one per node of the shared
# 3-node lab Swarm, under well-formed load and hostile clients at the same time.
#   - wrk (bench/soak.lua): CONNECTIONS keep-alive connections, REQUESTS signed GETs
#     in all; most go to the local agent (proxied /containers/json and /images/json,
#     /browse/ls on a volume, /host/info with CAP_HOST_MANAGEMENT=1), LAB_SHARE% of
#     both go to node 1's agent (aggregated /containers/json, /images/json, /volumes,
#     /networks over the three nodes).
#   - bench/soak-clients.py: SLOW slowloris clients (request heads trickled byte by
#     byte), MALFORMED clients (garbage, bad or forged signatures, oversized headers,
#     and issue 13's attacks: bodies promised and never sent, ambiguous framing,
#     refused upgrades, each of which must end its connection) and PIPELINERS clients
#     (megabytes of pipelined requests, never reading an answer), spread over the
#     local agent and node 1's, for as long as wrk runs.
#   - Every agent runs in its own memory cgroup limited to MEMORY_LIMIT_MB: an agent
#     the attacks could drive out of memory is killed, and the soak fails.
# Prints requests done, failed well-formed requests (any non-2xx answer or socket
# error; must be 0), crashes (must be none), what the hostile clients got, and each
# agent's open descriptors, RSS and anonymous RSS before, at peak and after the load.
# "Back" means, within SETTLE seconds after the load (idle engine connections close
# after 15 s, the heap is trimmed within 10 s): descriptors at or below the starting
# count, and anonymous memory (heap, stacks: what the agent allocates) at most 4 MiB
# above the start. RSS also counts the binary's own code pages, which the load pages
# in from disk (file-backed, shared, reclaimable); it is printed, not judged.
# Exits non-zero when any of these fails.
#   bench/soak.sh [REQUESTS, default 200000] [CONNECTIONS, default 1000] [SLOW, default 300] [MALFORMED, default 100]
# Environment: DECKHAND_TEST_ENGINE_SOCKET (the engine), DECKHAND_TEST_LAB_ENV (the
# lab's env file; without it the lab part is skipped and said so), LAB_SHARE (default
# 15), SETTLE (default 45), PIPELINERS (default 20), MEMORY_LIMIT_MB (default 512: twice what node 1 peaks at under this load),
# SCRATCH_PATH, DECKHAND_BINARY (a given build instead of this tree's). Holds /tmp/deckhand-lab.lock (with a lab)
# and /tmp/deckhand-bench.lock, in that order, for the whole run.
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-200000}
connections=${2:-1000}
slow=${3:-300}
malformed=${4:-100}
lab_share=${LAB_SHARE:-15}
settle=${SETTLE:-45}
pipeliners=${PIPELINERS:-20}
memory_limit_mb=${MEMORY_LIMIT_MB:-512}
sock=${DECKHAND_TEST_ENGINE_SOCKET:?set DECKHAND_TEST_ENGINE_SOCKET to the engine socket}
lab_env=${DECKHAND_TEST_LAB_ENV:-}
anon_slack_kb=$((4 * 1024))

command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
# SCRATCH_PATH: build in another folder than .build (e.g. beside a debug build in use).
binary=${DECKHAND_BINARY:-$(scripts/release-build ${SCRATCH_PATH:+--scratch-path "$SCRATCH_PATH"})}
if [ -z "${SOAK_LOCKED:-}" ]; then
    # Lab first, then bench: the order other lab benchmarks take them in (no deadlock).
    locks=(flock /tmp/deckhand-bench.lock)
    [ -n "$lab_env" ] && locks=(flock /tmp/deckhand-lab.lock "${locks[@]}")
    SOAK_LOCKED=1 exec "${locks[@]}" "$0" "$@"
fi
# wrk, the hostile clients and the agents each need more descriptors than the usual 1024.
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d /tmp/deckhand-soak.XXXXXX)
pids=()
volume=soak-$$
cgroups=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for group in "${cgroups[@]}"; do rmdir "$group" 2>/dev/null || true; done
    docker -H "unix://$sock" volume rm -f "$volume" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# Puts process $1 in a memory cgroup of its own, limited to MEMORY_LIMIT_MB (v1 or v2).
limit_memory() {
    local group
    if [ -d /sys/fs/cgroup/memory ]; then
        group=/sys/fs/cgroup/memory/deckhand-soak-$$-$1
        mkdir "$group" && echo $((memory_limit_mb << 20)) > "$group/memory.limit_in_bytes"
    elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then
        group=/sys/fs/cgroup/deckhand-soak-$$-$1
        mkdir "$group" && echo $((memory_limit_mb << 20)) > "$group/memory.max"
    else
        echo "soak: no memory cgroup on this machine: the agents run without a memory limit"; return
    fi
    cgroups+=("$group")
    echo "$1" > "$group/cgroup.procs"
}

load_conditions() {
    echo "load average $(cut -d' ' -f1-3 /proc/loadavg), $(pgrep -c swift-frontend || true) swift-frontend processes running"
}
echo "agents limited to $memory_limit_mb MiB each; $pipeliners pipeliners that never read"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(date -u '+%F %H:%M UTC'); at start: $(load_conditions)"

# The local agent, with a volume to browse.
docker -H "unix://$sock" volume create "$volume" >/dev/null
docker -H "unix://$sock" run --rm -v "$volume:/data" busybox:local sh -c 'for i in $(seq 1 50); do echo "file $i" > /data/f$i.txt; done; mkdir /data/sub' >/dev/null
root=$(docker -H "unix://$sock" info --format '{{.DockerRootDir}}')
"$binary" keygen --out "$work/client.pem" >/dev/null
mapfile -t headers < <("$binary" sign --key "$work/client.pem")
port=19501
CAP_HOST_MANAGEMENT=1 DECKHAND_HOST_ROOT=/ DECKHAND_ENGINE_SOCKET="$sock" DECKHAND_VOLUMES_ROOT="$root/volumes" \
    AGENT_HOST=127.0.0.1 AGENT_PORT=$port LOG_LEVEL=WARN LOG_MODE=JSON "$binary" serve 2>"$work/local.log" &
pids+=($!)
agents=("local:$!")
limit_memory "$!"
for _ in $(seq 1 100); do curl -sk "https://127.0.0.1:$port/ping" >/dev/null && break; sleep 0.1; done
local_paths=(/containers/json /images/json "/browse/ls?volumeID=$volume&path=/" /host/info)

# One agent per lab node, as the cluster tests start them.
lab_paths=("/containers/json?all=1" /images/json /volumes /networks)
lab_target=
if [ -n "$lab_env" ]; then
    # shellcheck disable=SC1090
    source "$lab_env"
    seeds="$NODE1_ADDR:9001,$NODE2_ADDR:9001,$NODE3_ADDR:9001"
    for n in 1 2 3; do
        addr_var="NODE${n}_ADDR"
        if curl -sk --max-time 2 "https://${!addr_var}:9001/ping" >/dev/null; then
            echo "soak: an agent already listens on ${!addr_var}:9001" >&2; exit 1
        fi
    done
    for n in 1 2 3; do
        addr_var="NODE${n}_ADDR"
        SWARM_LAB_DIR=$LAB_DIR scripts/swarm-lab exec "$n" env AGENT_HOST="${!addr_var}" AGENT_PORT=9001 AGENT_CLUSTER_ADDR="$seeds" \
            LOG_LEVEL=WARN LOG_MODE=JSON "$binary" serve 2>"$work/node$n.log" &
        pids+=($!)
        agents+=("node$n:$!")
        limit_memory "$!"
    done
    lab_target="$NODE1_ADDR:9001"
    # shellcheck source=bench/cluster-lab.sh
    source bench/cluster-lab.sh
    wait_for_cluster "$lab_target" "${headers[0]}" "${headers[1]}"
else
    echo "soak: DECKHAND_TEST_LAB_ENV not set: no lab part (aggregated lists) in this run"
    lab_share=0
fi

# Every path answers 200 once before the load (and warms the caches).
check_paths() {
    local base=$1; shift
    for path in "$@"; do
        code=$(curl -sk -o /dev/null -w '%{http_code}' -H "${headers[0]}" -H "${headers[1]}" "$base$path")
        [ "$code" = 200 ] || { echo "soak: $base$path answered $code before the load" >&2; exit 1; }
    done
}
check_paths "https://127.0.0.1:$port" "${local_paths[@]}"
[ -n "$lab_target" ] && check_paths "https://$lab_target" "${lab_paths[@]}"
sleep 2

fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
anon() { awk '/RssAnon/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
declare -A before_fd before_rss before_anon
for agent in "${agents[@]}"; do
    pid=${agent#*:}; before_fd[$pid]=$(fds "$pid"); before_rss[$pid]=$(rss "$pid"); before_anon[$pid]=$(anon "$pid")
done
# Peaks: sampled every half second while the load runs.
sample() {
    while [ ! -e "$work/stop" ]; do
        for agent in "${agents[@]}"; do pid=${agent#*:}; echo "$pid $(fds "$pid") $(rss "$pid") $(anon "$pid")"; done
        sleep 0.5
    done > "$work/samples"
}
sample &
pids+=($!)

lab_requests=$((requests * lab_share / 100))
lab_connections=$((connections * lab_share / 100))
local_requests=$((requests - lab_requests))
local_connections=$((connections - lab_connections))
client_targets="127.0.0.1:$port${lab_target:+,$lab_target}"
python3 bench/soak-clients.py "$client_targets" "$slow" "$malformed" "$work/stop" 1800 "$pipeliners" > "$work/clients.json" &
clients_pid=$!
pids+=($clients_pid)
sleep 3  # the hostile clients are connected before the load starts
started=$(date +%s)
wrks=()
wrk -t2 -c"$local_connections" -d1800s --timeout 30s -s bench/soak.lua "https://127.0.0.1:$port" -- \
    $((local_requests / 2)) "${headers[0]}" "${headers[1]}" "${local_paths[@]}" > "$work/wrk-local.out" 2>&1 &
wrks+=($!)
if [ -n "$lab_target" ] && [ "$lab_requests" -gt 0 ]; then
    wrk -t1 -c"$lab_connections" -d1800s --timeout 30s -s bench/soak.lua "https://$lab_target" -- \
        "$lab_requests" "${headers[0]}" "${headers[1]}" "${lab_paths[@]}" > "$work/wrk-lab.out" 2>&1 &
    wrks+=($!)
fi
pids+=("${wrks[@]}")
# A wrk thread stops once it has its share of answers, but wrk itself sleeps out its
# -d: once only its main thread is left, SIGINT makes it print its summary and exit.
for wrk_pid in "${wrks[@]}"; do
    while sleep 1 && kill -0 "$wrk_pid" 2>/dev/null; do
        [ "$(find "/proc/$wrk_pid/task" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)" -le 1 ] && kill -INT "$wrk_pid" 2>/dev/null
    done
    wait "$wrk_pid" || true
done
elapsed=$(( $(date +%s) - started ))
echo "during the load ($elapsed s): $(load_conditions)"
touch "$work/stop"
wait "$clients_pid" || true

status=0
report_wrk() {
    local name=$1 file=$2 line answered failed errors
    line=$(grep '^SOAK answered' "$file" || true)
    if [ -z "$line" ]; then echo "$name: wrk printed no summary"; cat "$file"; status=1; return; fi
    answered=$(sed 's/.*answered=\([0-9]*\).*/\1/' <<<"$line")
    failed=$(sed 's/.*non2xx=\([0-9]*\).*/\1/' <<<"$line")
    errors=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^(connect|read|write|timeout)=/) { split($i, kv, "="); s += kv[2] } } END { print s + 0 }' <<<"$line")
    echo "$name: $answered requests answered, $((failed + errors)) failed well-formed requests ($failed non-2xx, $errors socket errors) [$line]"
    grep '^SOAK first_failure' "$file" || true
    [ $((failed + errors)) -eq 0 ] || status=1
    done_total=$((done_total + answered))
}
done_total=0
report_wrk "local agent (proxied lists, /browse/ls, /host/info; $local_connections connections)" "$work/wrk-local.out"
[ -n "$lab_target" ] && report_wrk "lab node1 agent (aggregated lists over 3 nodes; $lab_connections connections)" "$work/wrk-lab.out"
echo "requests done: $done_total (target $requests)"
[ "$done_total" -ge "$requests" ] || status=1
echo "hostile clients: $(cat "$work/clients.json")"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(1 if s["unexpected"] or s["slow_answered"] else 0)' "$work/clients.json" \
    || { echo "soak: a hostile client got an answer it should not have"; status=1; }

# Crashes: every agent still runs, and none logged a fatal error.
for agent in "${agents[@]}"; do
    name=${agent%%:*} pid=${agent#*:}
    if ! kill -0 "$pid" 2>/dev/null; then echo "soak: $name agent (pid $pid) is gone"; status=1; fi
done
if grep -l -i 'fatal error\|crash' "$work"/*.log; then echo "soak: an agent logged a crash"; status=1; else echo "crashes: none"; fi

# Back to the starting level: poll until every agent is back, at most SETTLE seconds.
back_all() {
    for agent in "${agents[@]}"; do
        pid=${agent#*:}
        [ "$(fds "$pid")" -le "${before_fd[$pid]}" ] && [ "$(anon "$pid")" -le $((before_anon[$pid] + anon_slack_kb)) ] || return 1
    done
}
waited=0
while ! back_all && [ "$waited" -lt "$settle" ]; do sleep 1; waited=$((waited + 1)); done
mb() { bc -l <<<"$1/1024" | xargs printf '%.1f'; }
printf '%-6s %-22s %-28s %-28s\n' agent "fds before/peak/after" "RSS MB before/peak/after" "anon MB before/peak/after"
for agent in "${agents[@]}"; do
    name=${agent%%:*} pid=${agent#*:}
    peak() { awk -v p="$pid" -v c="$1" '$1 == p && $c > m { m = $c } END { print m + 0 }' "$work/samples"; }
    fd_after=$(fds "$pid") rss_after=$(rss "$pid") anon_after=$(anon "$pid")
    printf '%-6s %-22s %-28s %-28s\n' "$name" "${before_fd[$pid]} / $(peak 2) / $fd_after" \
        "$(mb "${before_rss[$pid]}") / $(mb "$(peak 3)") / $(mb "$rss_after")" \
        "$(mb "${before_anon[$pid]}") / $(mb "$(peak 4)") / $(mb "$anon_after")"
    if [ "$fd_after" -gt "${before_fd[$pid]}" ] || [ "$anon_after" -gt $((before_anon[$pid] + anon_slack_kb)) ]; then
        echo "soak: $name not back to its starting level after ${settle}s"; status=1
    fi
done
echo "settled after ${waited}s (back = descriptors <= before, anonymous memory <= before + $((anon_slack_kb / 1024)) MiB)"
exit $status
