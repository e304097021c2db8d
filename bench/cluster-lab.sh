# shellcheck shell=bash
# Sourced by the cluster benchmarks. `lab_use DIR` makes the Swarm lab available:
# the one that is up (SWARM_LAB_DIR, else the one that owns the lab bridge) is used
# as it is; only when none is up is a private one brought up in DIR, and
# `lab_release` takes down only that one. (One lab per machine: bringing up a second
# would fail, and taking "ours" down would take the other's.) On a shared machine,
# hold the lab's lock around the whole benchmark.
# Sets the lab's env (NODEn_SOCK, NODEn_ADDR, ...) and exports SWARM_LAB_DIR.
# `bench_prepare`: the packages, wrk, and the release binary to measure
# (DECKHAND_BINARY if set, else this tree's, built).
bench_prepare() {
    scripts/setup >/dev/null
    command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    if [ -z "${DECKHAND_BINARY:-}" ]; then
        DECKHAND_BINARY=$(scripts/release-build)
    fi
}

lab_use() {
    local private=$1 owner
    owner=$(cat /sys/class/net/dhlab0/ifalias 2>/dev/null || true)
    lab_owned=0
    if [ -n "${SWARM_LAB_DIR:-}" ] && [ -f "$SWARM_LAB_DIR/env" ]; then
        lab_dir=$SWARM_LAB_DIR
    elif [ -n "$owner" ] && [ -f "$owner/env" ]; then
        lab_dir=$owner
    else
        lab_dir=$private
        lab_owned=1
        scripts/swarm-lab up "$lab_dir" >/dev/null
    fi
    export SWARM_LAB_DIR=$lab_dir
    # shellcheck disable=SC1091
    source "$lab_dir/env"
}

lab_release() {
    if [ "${lab_owned:-0}" = 1 ]; then scripts/swarm-lab down "$lab_dir" >/dev/null || true; fi
}

# `lab_containers N PREFIX`: N created (not started) containers per node, named
# PREFIX-<node>-<i>; `lab_containers_remove PREFIX` removes them.
# LAB_IMAGE_REF=name (default) creates them from the image's name, as `docker run
# busybox` and Swarm's tasks do; LAB_IMAGE_REF=id from its ID. It matters to the
# engine: for a container created from a name, every `containers/json` reads and
# checks the image's config from disk to see whether the name still points at it
# (dockerd 20.10's refreshImage), about 75 µs per container here; from an ID it does not.
lab_containers() {
    local n i sock image
    for n in $(seq 1 "$LAB_NODES"); do
        sock="NODE${n}_SOCK"
        image=busybox:local
        if [ "${LAB_IMAGE_REF:-name}" = id ]; then
            image=$(docker -H "unix://${!sock}" image inspect busybox:local --format '{{.Id}}')
        fi
        for i in $(seq 1 "$1"); do docker -H "unix://${!sock}" create --name "$2-$n-$i" "$image" true >/dev/null; done
    done
}

lab_containers_remove() {
    local n sock ids
    for n in $(seq 1 "${LAB_NODES:-0}"); do
        sock="NODE${n}_SOCK"
        ids=$(docker -H "unix://${!sock}" ps -aq --filter "name=^$1-" 2>/dev/null || true)
        if [ -n "$ids" ]; then
            # shellcheck disable=SC2086
            docker -H "unix://${!sock}" rm -f $ids >/dev/null 2>&1 || true
        fi
    done
}

# `cpu_ticks PID...`: user+system CPU time of the processes, in clock ticks.
cpu_ticks() {
    local total=0 pid
    for pid in "$@"; do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
    echo "$total"
}

# `thread_ns PID`: "tid nanoseconds-on-CPU" for each of the process's threads.
thread_ns() {
    local task
    for task in /proc/"$1"/task/*; do
        [ -r "$task/schedstat" ] && echo "${task##*/} $(cut -d' ' -f1 "$task/schedstat" 2>/dev/null)"
    done
    return 0
}

# The lab engines' pids.
lab_engine_pids() {
    local n
    # The pid files end without a newline.
    for n in $(seq 1 "$LAB_NODES"); do printf '%s\n' "$(cat "$lab_dir/node$n/run/docker.pid")"; done
}

# `wrk_summary FILE`: "requests/s p50-ms p99-ms requests" from `wrk --latency` output;
# fails on non-2xx answers or socket errors.
wrk_summary() {
    if grep -q 'Non-2xx\|Socket errors' "$1"; then cat "$1" >&2; return 1; fi
    awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /Requests\/sec/ { rps = $2 }
        /requests in/ { count = $1 }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        END { printf "%.0f %.2f %.2f %d\n", rps, p50, p99, count }' "$1"
}

# wait_for_cluster ADDRESS HEADER HEADER: until the agent at ADDRESS (host:port) lists
# all three nodes, for up to 30 s; fails otherwise.
wait_for_cluster() {
    local address=$1 count=0
    for _ in $(seq 1 150); do
        count=$(curl -sk -H "$2" -H "$3" "https://$address/agents" | grep -o NodeName | wc -l || true)
        [ "$count" = 3 ] && return 0
        sleep 0.2
    done
    echo "bench: the lab agents did not form a cluster ($count of 3 nodes seen from $address)" >&2
    return 1
}
