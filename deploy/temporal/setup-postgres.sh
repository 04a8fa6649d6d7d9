#!/bin/sh
# One-shot (temporalio/admin-tools): create Temporal's two PostgreSQL
# databases and bring their schemas up to date. Safe to run on every start:
# an existing database or schema is kept and only newer versions are applied.
set -eu

host=${POSTGRES_SEEDS:-postgresql}
port=${DB_PORT:-5432}
user=${POSTGRES_USER:-temporal}
# temporal-sql-tool reads the password from SQL_PASSWORD; it comes from the
# Docker secret, never from the compose file.
SQL_PASSWORD=$(cat "${POSTGRES_PASSWORD_FILE:-/run/secrets/postgres_password}")
export SQL_PASSWORD
schema=${TEMPORAL_SCHEMA_DIR:-/etc/temporal/schema/postgresql/v12}

tries=0
until nc -z "$host" "$port"; do
  tries=$((tries + 1))
  [ "$tries" -lt 60 ] || { echo "PostgreSQL at $host:$port did not answer"; exit 1; }
  echo "waiting for PostgreSQL at $host:$port"
  sleep 1
done

sql() { temporal-sql-tool --plugin postgres12 --ep "$host" -p "$port" -u "$user" "$@"; }

for pair in temporal:temporal temporal_visibility:visibility; do
  db=${pair%%:*}
  dir=${pair#*:}
  sql --db "$db" create || echo "database $db already exists"
  sql --db "$db" setup-schema -v 0.0 || echo "schema of $db already initialised"
  # Must succeed: it is what makes the schema current.
  sql --db "$db" update-schema -d "$schema/$dir/versioned"
done
echo "PostgreSQL schemas are current"
