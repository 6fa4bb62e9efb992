#!/usr/bin/env bash
# Glass-to-glass latency: the same publisher and the same player against Siaran (LL-HLS) and
# against nginx with the RTMP module (`hls on`), one after the other in the same run.
#
# The publisher (ffmpeg: 1280x720 30 fps test pattern, x264 veryfast zerolatency, 2 s
# keyframes, AAC) burns its own clock into every frame: a stripe of 24 black/white blocks at the
# top is the frame's time in milliseconds since ffmpeg was launched, plus a base. The player is
# hls.js (frontend/node_modules, the watch page's settings) in Debian's headless Chromium; for
# every frame shown (requestVideoFrameCallback) it reads the stripe back from a canvas and takes
# latency = the time the frame is shown − the time the frame was made. Frames are made from the
# moment ffmpeg starts, so its start-up time (~0.1 s) counts as latency: the figures are upper
# bounds, the same for both servers. Stalls: `waiting` events after playback started.
#
#   benches/latency/run.sh                # 60 s measured per server after 10 s of warm-up
#   BENCH_SECONDS=30 benches/latency/run.sh
#
# Needs what scripts/setup.sh installs (PostgreSQL, Redis, ffmpeg, nginx, libnginx-mod-rtmp,
# chromium) and `npm ci` in frontend/. Runs its own Siaran (a throwaway database) and nginx.
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { printf '\033[1;34m[bench latency]\033[0m %s\n' "$*" >&2; }

MEASURE=${BENCH_SECONDS:-60}
WARMUP=${BENCH_WARMUP:-10}
NGINX_RTMP_MODULE=${NGINX_RTMP_MODULE:-/usr/lib/nginx/modules/ngx_rtmp_module.so}
DB_ADMIN_URL=${DATABASE_URL:-postgres://siaran:siaran@127.0.0.1:5432/siaran}
work=$(mktemp -d /tmp/siaran-bench-latency.XXXXXX)
bench_db="siaran_bench_latency_$$"
# shellcheck source=benches/lib.sh
. benches/lib.sh
trap cleanup EXIT
[ -d frontend/node_modules/hls.js ] || (cd frontend && npm ci --silent)

say "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
say "building (release)"
cargo build --release --locked --quiet --bin siaran

# --- Siaran -----------------------------------------------------------------------------------
http_port=$(free_port); siaran_rtmp=$(free_port)
psql -X -q "$DB_ADMIN_URL" -c "CREATE DATABASE $bench_db" >/dev/null
api="http://127.0.0.1:$http_port"
DATABASE_URL="${DB_ADMIN_URL%/*}/$bench_db" SIARAN_REDIS_PREFIX="siaran-bench-latency-$$" \
SIARAN_HTTP_ADDR="127.0.0.1:$http_port" SIARAN_RTMP_ADDR="127.0.0.1:$siaran_rtmp" \
SIARAN_HLS_DIR="$work/siaran-hls" SIARAN_JWT_SECRET="bench-secret-bench-secret-bench-secret-0123" \
SIARAN_LOG_FORMAT=json RUST_LOG=warn target/release/siaran serve >>"$work/siaran.log" 2>&1 &
for _ in $(seq 1 100); do curl -fs "$api/healthz" >/dev/null && break; sleep 0.2; done
curl -fs "$api/healthz" >/dev/null || { cat "$work/siaran.log" >&2; exit 1; }
curl -fs -H 'content-type: application/json' "$api/api/auth/register" \
  -d '{"username":"latency","email":"latency@example.com","password":"bench-password-1"}' >/dev/null
token=$(curl -fs -H 'content-type: application/json' "$api/api/auth/login" \
  -d '{"login":"latency","password":"bench-password-1"}' | jq -r .access_token)
key=$(curl -fs -X POST -H "authorization: Bearer $token" "$api/api/users/me/stream-key" | jq -r .stream_key)
stream_id=$(curl -fs -H "authorization: Bearer $token" -H 'content-type: application/json' \
  "$api/api/streams" -d '{"title":"latency"}' | jq -r .id)

# --- nginx-rtmp -------------------------------------------------------------------------------
nginx_rtmp=$(free_port); nginx_http=$(free_port)
mkdir -p "$work/nginx/logs" "$work/nginx-hls"
cat >"$work/nginx/nginx.conf" <<CONF
load_module $NGINX_RTMP_MODULE;
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 1024; }
rtmp {
  server {
    listen 127.0.0.1:$nginx_rtmp;
    application live { live on; hls on; hls_path $work/nginx-hls; hls_nested on; }
  }
}
http {
  access_log off;
  types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
  server {
    listen 127.0.0.1:$nginx_http;
    location /hls/ {
      alias $work/nginx-hls/;
      add_header Cache-Control no-cache always;
      add_header Access-Control-Allow-Origin * always;
    }
  }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
sleep 0.5

# --- one server ---------------------------------------------------------------------------------
# publish URL PLAYLIST NAME: the stamped publisher for WARMUP + MEASURE s, the player on it.
measure() {
  local url=$1 playlist=$2 name=$3 launch base
  launch=$(date +%s%3N)
  base=$((launch % 8388608))
  # Bit k of (ms since launch + base) is block k (53 px wide) of the top 40 px.
  local bits="255*mod(floor((T*1000+$base)/pow(2,floor(X/53))),2)"
  ffmpeg -hide_banner -loglevel error -nostdin \
    -re -f lavfi -i "testsrc2=size=1280x720:rate=30" \
    -re -f lavfi -i "color=c=black:s=1280x40:r=30,format=gray,geq=lum='$bits'" \
    -re -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -filter_complex "[0:v][1:v]overlay=0:0:shortest=1,format=yuv420p[v]" -map "[v]" -map 2:a \
    -t $((WARMUP + MEASURE + 15)) -c:v libx264 -preset veryfast -tune zerolatency -b:v 3M \
    -g 60 -keyint_min 60 -sc_threshold 0 -c:a aac -b:a 128k -f flv "$url" 2>>"$work/ffmpeg-$name.log" &
  local publisher=$!
  node benches/latency/measure.mjs --playlist "$playlist" --launch "$launch" --base "$base" \
    --warmup "$WARMUP" --seconds "$MEASURE" --name "$name"
  kill "$publisher" 2>/dev/null || true
  wait "$publisher" 2>/dev/null || true
}

say "Siaran: rtmp://127.0.0.1:$siaran_rtmp/live (LL-HLS at $api/hls/$stream_id/index.m3u8)"
siaran=$(measure "rtmp://127.0.0.1:$siaran_rtmp/live/$key" "$api/hls/$stream_id/index.m3u8" siaran)
sleep 3
say "nginx-rtmp: rtmp://127.0.0.1:$nginx_rtmp/live (HLS at :$nginx_http)"
nginx=$(measure "rtmp://127.0.0.1:$nginx_rtmp/live/bench" "http://127.0.0.1:$nginx_http/hls/bench/index.m3u8" nginx)

printf '%s\n%s\n' "$siaran" "$nginx"
jq -rn --argjson s "$siaran" --argjson n "$nginx" \
  '"ratio (Siaran / nginx-rtmp): p50 \(($s.p50 / $n.p50 * 100 | round) / 100), p90 \(($s.p90 / $n.p90 * 100 | round) / 100)"'
say "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
