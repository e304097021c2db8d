#!/usr/bin/env bash
# 1 GiB upload and download through Deckhand's volume browser with curl, and the same
# download from nginx serving the file over TLS, in one run. Prints MB/s, the
# ratio, and the agent's peak RSS growth during the upload.
#   [DECKHAND_BINARY=path] bench/files.sh [size in MiB, default 1024]
# DECKHAND_BINARY measures a given build (e.g. an older one) instead of building this tree.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
scripts/setup
command -v nginx >/dev/null && command -v openssl >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light openssl >/dev/null
}
binary=${DECKHAND_BINARY:-$(scripts/release-build)}

work=$(mktemp -d /var/tmp/deckhand-files.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# A volumes folder of our own: the agent only needs <root>/<volume>/_data.
mkdir -p "$work/volumes/bench/_data" "$work/www"
dd if=/dev/urandom of="$work/payload.bin" bs=1M count="$size_mib" status=none
cp "$work/payload.bin" "$work/volumes/bench/_data/served.bin"
cp "$work/payload.bin" "$work/www/served.bin"
sync

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=nginx -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat > "$work/nginx.conf" <<CFG
user root;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 64; }
http {
    access_log off;
    sendfile on;
    server {
        listen 127.0.0.1:19201 ssl;
        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        root $work/www;
    }
}
CFG
nginx -c "$work/nginx.conf"

"$binary" keygen --out "$work/client.pem" >/dev/null
mapfile -t headers < <("$binary" sign --key "$work/client.pem")
DECKHAND_VOLUMES_ROOT="$work/volumes" DECKHAND_ENGINE_SOCKET=/nonexistent.sock AGENT_HOST=127.0.0.1 AGENT_PORT=19202 \
    LOG_LEVEL=ERROR "$binary" serve &
pids+=($!)
agent=$!
for _ in $(seq 1 50); do curl -sk https://127.0.0.1:19202/ping >/dev/null && break; sleep 0.1; done
curl -sk -H "${headers[0]}" -H "${headers[1]}" "https://127.0.0.1:19202/browse/ls?volumeID=bench&path=/" >/dev/null
hwm() { awk '/VmHWM/ {print $2}' "/proc/$agent/status"; }
mbps() { awk -v bytes="$1" -v secs="$2" 'BEGIN { printf "%.0f", bytes / secs / 1e6 }'; }
bytes=$((size_mib * 1048576))

# What this disk can do at best for a durable write of the same size.
dd_secs=$( { /usr/bin/time -f '%e' dd if=/dev/zero of="$work/dd.bin" bs=1M count="$size_mib" conv=fsync status=none; } 2>&1 )
rm -f "$work/dd.bin"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(date -u +%F); file: $size_mib MiB"
before=$(hwm)
upload_secs=$(curl -sk -o /dev/null -w '%{time_total}' -H "${headers[0]}" -H "${headers[1]}" \
    -F "file=@$work/payload.bin;filename=uploaded.bin" -F "Path=/in" "https://127.0.0.1:19202/browse/put?volumeID=bench")
after=$(hwm)
cmp "$work/payload.bin" "$work/volumes/bench/_data/in/uploaded.bin"
echo "upload   deckhand  $(mbps $bytes "$upload_secs") MB/s  (${upload_secs}s, peak RSS growth $(( (after - before) / 1024 )) MB, file verified)"
echo "upload   reference $(mbps $bytes "$dd_secs") MB/s  (dd bs=1M conv=fsync of the same size on the same disk: ${dd_secs}s)"

# Page cache warm for both readers.
cat "$work/www/served.bin" "$work/volumes/bench/_data/served.bin" >/dev/null
n_speed=0; d_speed=0
for round in 1 2 3; do
    n=$(curl -sk -o /dev/null -w '%{speed_download}' https://127.0.0.1:19201/served.bin)
    d=$(curl -sk -o /dev/null -w '%{speed_download}' -H "${headers[0]}" -H "${headers[1]}" \
        "https://127.0.0.1:19202/browse/get?volumeID=bench&path=served.bin")
    n_speed=$(awk -v a="$n_speed" -v b="$n" 'BEGIN { print (b > a) ? b : a }')
    d_speed=$(awk -v a="$d_speed" -v b="$d" 'BEGIN { print (b > a) ? b : a }')
done
echo "download nginx     $(awk -v s="$n_speed" 'BEGIN { printf "%.0f", s / 1e6 }') MB/s (best of 3)"
echo "download deckhand  $(awk -v s="$d_speed" 'BEGIN { printf "%.0f", s / 1e6 }') MB/s (best of 3)"
awk -v d="$d_speed" -v n="$n_speed" 'BEGIN { printf "download ratio     %.2fx of nginx\n", d / n }'
echo "deckhand peak RSS overall $(( $(hwm) / 1024 )) MB"
