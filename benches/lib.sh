# Shared by the shell benches (sourced after they set `work`, `bench_db` and `DB_ADMIN_URL`).

# Stops this script's own background jobs (servers, publishers, probes, by their ids), drops its
# throwaway database and removes its work directory.
cleanup() {
  local running
  running=$(jobs -p)
  [ -n "$running" ] && kill $running 2>/dev/null || true
  wait 2>/dev/null || true
  psql -X -q "$DB_ADMIN_URL" -c "DROP DATABASE IF EXISTS $bench_db" >/dev/null 2>&1 || true
  rm -rf "$work"
}

# A free TCP port on loopback, below the ephemeral range (32768+) where outgoing connections
# would collide.
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 12000))
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
}
