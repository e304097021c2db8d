# Sourced by the bench scripts that run one agent per node of a scripts/swarm-lab lab.

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
