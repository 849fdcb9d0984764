#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests that run on PostgreSQL: Debian's postgresql (installed when
# missing), initdb into a temporary folder as the `postgres` account, listening on 127.0.0.1 only, trust auth
# for local connections. Prints the SQLAlchemy URL of its `postgres` database (tests make one database each).
#   eval "$(bash scripts/setup-postgres.sh)"   → exports HARNESS_TEST_PG
set -euo pipefail
PORT=${PG_PORT:-55432}
DIR=${PG_DIR:-/tmp/harness-pg}
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg() { if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi; }
if ! as_pg "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
  rm -rf "$DIR" && mkdir -p "$DIR" && chown postgres "$DIR"
  as_pg "$BIN/initdb" -D "$DIR" -U postgres --auth=trust -E UTF8 >/dev/null
  as_pg "$BIN/pg_ctl" -D "$DIR" -l "$DIR/log" -w -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off -c max_connections=300" start >/dev/null
fi
echo "export HARNESS_TEST_PG=postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
