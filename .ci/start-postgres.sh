#!/usr/bin/env bash
# Install PostgreSQL from Debian's packages (when missing) and start a throwaway server on
# 127.0.0.1. Prints the SQLAlchemy URL of a database for the tests; PGDATA is in $1.
set -euo pipefail
pgdata=${1:?usage: start-postgres.sh <data dir> [port]}
port=${2:-54329}
if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
  (apt-get install -y -q postgresql || (apt-get update -q && apt-get install -y -q postgresql)) >&2
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
run_as_postgres() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
mkdir -p "$pgdata"
[ "$(id -u)" = 0 ] && chown postgres "$pgdata"
run_as_postgres "$bin/initdb -D '$pgdata' -A trust -U postgres" >&2
run_as_postgres "$bin/pg_ctl -D '$pgdata' -o \"-c listen_addresses=127.0.0.1 -p $port -k '$pgdata'\" -l '$pgdata/server.log' -w start" >&2
run_as_postgres "$bin/createdb -h 127.0.0.1 -p $port -U postgres fusebench_test" >&2
echo "postgresql+psycopg2://postgres@127.0.0.1:$port/fusebench_test"
