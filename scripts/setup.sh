#!/usr/bin/env bash
# Brings a Debian 12 machine to the point where Siaran builds, runs and tests:
# system packages (apt), PostgreSQL and Redis running, the `siaran` role and database.
# Idempotent: every step checks before it acts. Prints what it does.
#
#   scripts/setup.sh            everything
#   scripts/setup.sh packages   only the apt packages
#   scripts/setup.sh services   only PostgreSQL/Redis and the database
set -euo pipefail

say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[setup]\033[0m %s\n' "$*" >&2; exit 1; }

# Debian packages the project needs, by purpose.
PACKAGES=(
  # build
  build-essential pkg-config curl ca-certificates
  # GStreamer 1.22: headers for gstreamer-rs, and the elements the media pipeline uses
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-libav gstreamer1.0-tools
  # services
  postgresql redis-server
  # tests: ffmpeg publishes RTMP and reads HLS back, Chromium runs the end-to-end tests
  ffmpeg chromium
  # benches: the reference media server, and the tools benches/media/run.sh drives it with
  nginx libnginx-mod-rtmp jq bc
  # tests: schemathesis (scripts/tools.sh installs it into .venv-tools/) fuzzes the API contract
  python3 python3-venv
  # frontend toolchain
  nodejs
)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@"
  else return 99
  fi
}

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  # Node.js may come from elsewhere (nodesource, nvm); only ask apt when there is none.
  if command -v node >/dev/null 2>&1; then
    local kept=(); for p in "${missing[@]}"; do [ "$p" = nodejs ] || kept+=("$p"); done
    missing=("${kept[@]+"${kept[@]}"}")
  elif ! command -v npm >/dev/null 2>&1; then
    missing+=(npm)
  fi
  if [ ${#missing[@]} -eq 0 ]; then say "system packages: all present"; return; fi
  say "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! as_root apt-get update -qq || ! as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
    die "cannot install packages as this user; run:
  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
  fi
  # Debian starts nginx on install; the bench runs its own instance on its own ports.
  if [[ " ${missing[*]} " == *" nginx "* ]]; then
    as_root systemctl disable --now nginx >/dev/null 2>&1 || as_root nginx -s stop >/dev/null 2>&1 || true
  fi
}

# The database the defaults point at: postgres://siaran:siaran@127.0.0.1:5432/siaran
DB_USER=siaran
DB_PASSWORD=siaran
DB_NAME=siaran
DEFAULT_DATABASE_URL="postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:5432/$DB_NAME"

start_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then say "PostgreSQL: running"; return; fi
  say "PostgreSQL: starting"
  local version
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  [ -n "$version" ] || die "PostgreSQL is not installed (scripts/setup.sh packages installs it)"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
    || as_root pg_ctlcluster "$version" main start 2>/dev/null \
    || as_root service postgresql start \
    || die "cannot start PostgreSQL; start it and run this again"
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return; sleep 1; done
  die "PostgreSQL did not come up on 127.0.0.1:5432"
}

start_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then say "Redis: running"; return; fi
  say "Redis: starting"
  command -v redis-server >/dev/null || die "Redis is not installed (scripts/setup.sh packages installs it)"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/siaran-redis.log
  for _ in $(seq 1 20); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return; sleep 0.5; done
  die "Redis did not come up on 127.0.0.1:6379"
}

# psql as the `postgres` superuser over the local socket: works on a stock Debian install, whose
# pg_hba.conf allows that (peer auth) but refuses password-less logins over TCP.
psql_admin() {
  if [ "$(id -u)" -eq 0 ] && id postgres >/dev/null 2>&1; then
    runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 "$@"
  elif id postgres >/dev/null 2>&1 && command -v sudo >/dev/null && sudo -n -u postgres true 2>/dev/null; then
    sudo -n -u postgres psql -X -q -v ON_ERROR_STOP=1 "$@"
  else
    psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres "$@"
  fi
}

create_database() {
  if [ -n "${DATABASE_URL:-}" ] && [ "$DATABASE_URL" != "$DEFAULT_DATABASE_URL" ]; then
    say "DATABASE_URL is set to your own database; not creating the default one"
    return
  fi
  if PGPASSWORD=$DB_PASSWORD psql -X -q -h 127.0.0.1 -U $DB_USER -d $DB_NAME -c 'SELECT 1' >/dev/null 2>&1 \
     && PGPASSWORD=$DB_PASSWORD psql -X -tA -h 127.0.0.1 -U $DB_USER -d $DB_NAME \
          -c "SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user" 2>/dev/null | grep -q t; then
    say "database: $DB_NAME ready for $DB_USER"
    return
  fi
  say "database: creating role $DB_USER and database $DB_NAME"
  # CREATEDB lets the tests create a fresh database per test.
  psql_admin -d postgres <<SQL || die "cannot create the database role; run as root or with sudo"
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
  ELSE
    ALTER ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
  END IF;
END \$\$;
SQL
  if ! psql_admin -d postgres -tA -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'" | grep -q 1; then
    psql_admin -d postgres -c "CREATE DATABASE $DB_NAME OWNER $DB_USER"
  fi
  PGPASSWORD=$DB_PASSWORD psql -X -q -h 127.0.0.1 -U $DB_USER -d $DB_NAME -c 'SELECT 1' >/dev/null \
    || die "the role exists but cannot log in over TCP; check pg_hba.conf allows password logins from 127.0.0.1"
}

case "${1:-all}" in
  packages) install_packages ;;
  services) start_postgres; start_redis; create_database ;;
  all) install_packages; start_postgres; start_redis; create_database ;;
  *) die "usage: $0 [packages|services|all]" ;;
esac
