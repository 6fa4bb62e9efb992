#!/usr/bin/env bash
# Media bench: N passthrough RTMP publishers against Siaran and against nginx with the RTMP
# module (`hls on`), in the same run, interleaved (Siaran N=1, nginx N=1, Siaran N=4, ...).
#
# Each case runs on a freshly started, warmed-up server. For each server and N it prints the
# server's CPU per stream (% of one core), the memory (PSS and private) each added stream costs,
# and the median keyframe → playlist latency: how long after the keyframe that closes a segment
# left the publisher the segment was listed in the playlist. The Siaran/nginx ratio is
# from the same run. Publishers: N−1 × `ffmpeg -re -stream_loop -1 -i FILE -c copy -f flv`, plus
# one latency probe (benches/media/probe.rs) sending the same file at the same pace.
#
#   benches/media/run.sh                   # N = 1 4 8, 6 s warm-up, 30 s measured
#   BENCH_COUNTS="1 8" BENCH_SECONDS=20 benches/media/run.sh
#
# Needs what scripts/setup.sh installs (PostgreSQL, Redis, ffmpeg, nginx, libnginx-mod-rtmp).
# It runs its own nginx (private prefix, free ports) and its own Siaran (a throwaway database);
# it never touches a system nginx.
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { printf '\033[1;34m[bench media]\033[0m %s\n' "$*" >&2; }

COUNTS=${BENCH_COUNTS:-"1 4 8"}
WARMUP=${BENCH_WARMUP:-6}
MEASURE=${BENCH_SECONDS:-30}
NGINX_RTMP_MODULE=${NGINX_RTMP_MODULE:-/usr/lib/nginx/modules/ngx_rtmp_module.so}
DB_ADMIN_URL=${DATABASE_URL:-postgres://siaran:siaran@127.0.0.1:5432/siaran}
MAX_N=0; for n in $COUNTS; do [ "$n" -gt "$MAX_N" ] && MAX_N=$n; done

work=$(mktemp -d /tmp/siaran-bench-media.XXXXXX)
bench_db="siaran_bench_$$"
# shellcheck source=benches/lib.sh
. benches/lib.sh
trap cleanup EXIT

say "building (release)"
cargo build --release --locked --quiet --bin siaran
cargo build --release --locked --quiet -p media --example bench-probe
probe=target/release/examples/bench-probe

input=target/bench-media/input-720p30-3M-gop2.flv
if [ ! -f "$input" ]; then
  say "encoding the input: 720p30, 3 Mbit/s, 2 s GOP, AAC, 20 s"
  mkdir -p "$(dirname "$input")"
  ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=1280x720:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -t 20 -c:v libx264 -preset veryfast -b:v 3M -maxrate 3M -bufsize 6M -g 60 -keyint_min 60 \
    -sc_threshold 0 -pix_fmt yuv420p -c:a aac -b:a 128k -f flv "$input.tmp"
  mv "$input.tmp" "$input"
fi

# --- Siaran -----------------------------------------------------------------------------------
http_port=$(free_port); siaran_rtmp=$(free_port)
psql -X -q "$DB_ADMIN_URL" -c "CREATE DATABASE $bench_db" >/dev/null
siaran_hls="$work/siaran-hls"
say "starting Siaran (HTTP :$http_port, RTMP :$siaran_rtmp)"
start_siaran() {
  DATABASE_URL="${DB_ADMIN_URL%/*}/$bench_db" \
  SIARAN_REDIS_PREFIX="siaran-bench-$$" \
  SIARAN_HTTP_ADDR="127.0.0.1:$http_port" SIARAN_RTMP_ADDR="127.0.0.1:$siaran_rtmp" \
  SIARAN_HLS_DIR="$siaran_hls" SIARAN_JWT_SECRET="bench-secret-bench-secret-bench-secret-0123" \
  SIARAN_LOG_FORMAT=json RUST_LOG=warn \
    target/release/siaran serve >>"$work/siaran.log" 2>&1 &
  siaran_pid=$!
  for _ in $(seq 1 100); do curl -fs "$api/healthz" >/dev/null && break; sleep 0.2; done
  curl -fs "$api/healthz" >/dev/null || { cat "$work/siaran.log" >&2; exit 1; }
}
api="http://127.0.0.1:$http_port"
start_siaran
declare -a keys tokens
for i in $(seq 1 "$MAX_N"); do
  curl -fs -H 'content-type: application/json' "$api/api/auth/register" \
    -d "{\"username\":\"bench$i\",\"email\":\"bench$i@example.com\",\"password\":\"bench-password-$i\"}" >/dev/null
  tokens[$i]=$(curl -fs -H 'content-type: application/json' "$api/api/auth/login" \
    -d "{\"login\":\"bench$i\",\"password\":\"bench-password-$i\"}" | jq -r .access_token)
  keys[$i]=$(curl -fs -X POST -H "authorization: Bearer ${tokens[$i]}" "$api/api/users/me/stream-key" | jq -r .stream_key)
done
kill -TERM "$siaran_pid"; wait "$siaran_pid" 2>/dev/null || true

# --- nginx-rtmp -------------------------------------------------------------------------------
nginx_rtmp=$(free_port)
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
    chunk_size 4096;
    application live {
      live on;
      hls on;
      hls_path $work/nginx-hls;
      hls_nested on;
      hls_fragment 1s;
      hls_playlist_length 12s;
    }
  }
}
CONF
say "nginx-rtmp: RTMP :$nginx_rtmp, prefix $work/nginx"
start_nginx() {
  nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
  nginx_pid=$!
  sleep 0.5
  kill -0 "$nginx_pid" || { cat "$work/nginx/logs/error.log" >&2; exit 1; }
}

# --- measuring --------------------------------------------------------------------------------
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
pss_kb() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
# Private (unshared) memory: PSS also moves as the publishers map the same libraries (libav*).
uss_kb() { awk '/^Private_(Clean|Dirty):/ {s += $2} END {print s}' "/proc/$1/smaps_rollup"; }
now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# Each case starts a fresh server and warms it up with one short publish (loading GStreamer's
# plugins, the first pipeline): what a case measures is then N streams on a server that has
# served before, never what an earlier case or the account setup (Argon2 hashing, ~19 MB of
# heap the allocator returns whenever it likes) left behind.
fresh_server() {
  local server=$1 target
  if [ "$server" = siaran ]; then
    [ -n "${siaran_pid:-}" ] && { kill -TERM "$siaran_pid"; wait "$siaran_pid" 2>/dev/null || true; }
    start_siaran
    target="127.0.0.1:$siaran_rtmp/live/${keys[1]}"
  else
    [ -n "${nginx_pid:-}" ] && { kill -TERM "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true; }
    start_nginx
    target="127.0.0.1:$nginx_rtmp/live/warmup"
  fi
  timeout 6 ffmpeg -hide_banner -loglevel error -nostdin -re -i "$input" -t 4 -c copy \
    -f flv "rtmp://$target" || true
  sleep 3
}
siaran_pid=
nginx_pid=

declare -A cpu pss uss latency

# run_case SERVER N: N publishers for WARMUP + MEASURE seconds, measured over the last MEASURE.
run_case() {
  local server=$1 n=$2 pid port playlist probe_key i
  local publishers=()
  fresh_server "$server"
  if [ "$server" = siaran ]; then
    pid=$siaran_pid; port=$siaran_rtmp
    # The probe's streamer gets a fresh stream, whose id names the playlist's directory.
    local stream_id
    stream_id=$(curl -fs -H "authorization: Bearer ${tokens[$n]}" -H 'content-type: application/json' \
      "$api/api/streams" -d '{"title":"probe"}' | jq -r .id)
    probe_key=${keys[$n]}
    playlist="$siaran_hls/$stream_id/index.m3u8"
  else
    pid=$nginx_pid; port=$nginx_rtmp
    probe_key="probe-n$n-$RANDOM"
    playlist="$work/nginx-hls/$probe_key/index.m3u8"
  fi
  load() {
    local key=${keys[$1]}
    [ "$server" = nginx ] && key="load-$1-$RANDOM"
    ffmpeg -hide_banner -loglevel error -nostdin -re -stream_loop -1 -i "$input" -c copy \
      -f flv "rtmp://127.0.0.1:$port/live/$key" &
    publishers+=($!)
  }
  # Memory baseline: for N > 1 the server with one stream live (the first load publisher, after
  # a warm-up), so that the figure is what each *added* stream costs; for N = 1 the idle server.
  # A server's first stream after idling also settles what the allocator kept from the warm-up
  # publish (seen: Siaran's private memory drops by ~20 MB when the next stream starts).
  local base_p base_u first=1 added=$n
  if [ "$n" -gt 1 ]; then
    load 1
    sleep "$WARMUP"
    local bp=() bu=()
    for s in 1 2 3 4 5; do sleep 1; bp+=("$(pss_kb "$pid")"); bu+=("$(uss_kb "$pid")"); done
    base_p=$(median "${bp[@]}"); base_u=$(median "${bu[@]}")
    first=2; added=$((n - 1))
  else
    base_p=$(pss_kb "$pid"); base_u=$(uss_kb "$pid")
  fi
  for i in $(seq "$first" $((n - 1))); do load "$i"; done
  "$probe" "rtmp://127.0.0.1:$port/live/$probe_key" "$input" "$playlist" $((WARMUP + MEASURE + 2)) \
    >"$work/probe-$server-$n.txt" 2>&1 &
  local probe_pid=$!
  sleep "$WARMUP"
  local c0 t0 c1 t1 s p u
  local pss_samples=() uss_samples=()
  c0=$(cpu_ticks "$pid"); t0=$(now)
  # Memory is sampled once a second over the measured window and the median kept: one reading
  # moves by megabytes with where the allocator and the segment writers happen to be.
  for s in $(seq 1 "$MEASURE"); do
    sleep 1
    pss_samples+=("$(pss_kb "$pid")"); uss_samples+=("$(uss_kb "$pid")")
  done
  c1=$(cpu_ticks "$pid"); t1=$(now)
  p=$(median "${pss_samples[@]}"); u=$(median "${uss_samples[@]}")
  wait "$probe_pid" || true
  for i in "${publishers[@]}"; do kill "$i" 2>/dev/null || true; done
  for i in "${publishers[@]}"; do wait "$i" 2>/dev/null || true; done
  cpu[$server,$n]=$(echo "scale=3; ($c1 - $c0) / $ticks / ($t1 - $t0) * 100 / $n" | bc -l)
  pss[$server,$n]=$(echo "scale=2; ($p - $base_p) / 1024 / $added" | bc -l)
  uss[$server,$n]=$(echo "scale=2; ($u - $base_u) / 1024 / $added" | bc -l)
  latency[$server,$n]=$(sed -n 's/.*median=\([^ ]*\) p90=\([^ ]*\) n=\([0-9]*\).*/\1 ms (p90 \2, n=\3)/p' "$work/probe-$server-$n.txt")
  [ -n "${latency[$server,$n]}" ] || latency[$server,$n]="failed: $(head -c 200 "$work/probe-$server-$n.txt")"
  say "$server N=$n: CPU ${cpu[$server,$n]} %/stream, memory per added stream PSS ${pss[$server,$n]} MB (private ${uss[$server,$n]} MB), latency ${latency[$server,$n]}"
}

say "load before: $(uptime)"
for n in $COUNTS; do
  run_case siaran "$n"
  run_case nginx "$n"
done
say "load after: $(uptime)"

printf '\nMedia bench: %s s measured after %s s warm-up per case; CPU in %% of one core.\n' "$MEASURE" "$WARMUP"
printf '(Memory: growth of PSS and of private memory per stream the case adds — at N = 1 over the idle\n'
printf 'server, at N > 1 over the same server with one stream live; median of per-second samples.)\n'
printf '%-4s %-18s %-18s %-8s %-18s %-18s %-18s %-18s\n' N "Siaran CPU/str" "nginx CPU/str" ratio \
  "Siaran PSS/add" "nginx PSS/add" "Siaran priv/add" "nginx priv/add"
for n in $COUNTS; do
  ratio=$(echo "scale=2; ${cpu[siaran,$n]} / ${cpu[nginx,$n]}" | bc -l 2>/dev/null || echo n/a)
  printf '%-4s %-18s %-18s %-8s %-18s %-18s %-18s %-18s\n' "$n" "${cpu[siaran,$n]} %" "${cpu[nginx,$n]} %" \
    "${ratio}x" "${pss[siaran,$n]} MB" "${pss[nginx,$n]} MB" "${uss[siaran,$n]} MB" "${uss[nginx,$n]} MB"
done
printf '\nKeyframe -> segment listed (median over the measured segments of the probe stream):\n'
for n in $COUNTS; do
  printf '  N=%-3s Siaran %-32s nginx-rtmp %s\n' "$n" "${latency[siaran,$n]}" "${latency[nginx,$n]}"
done
