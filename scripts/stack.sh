#!/usr/bin/env bash
# `make stack`: docker-compose.yml's production stack on this machine, without
# containers, from the project's own files: PostgreSQL (Debian's) → the compose
# file's schema script → the Temporal server (built from source at the version
# the compose file pins) with deploy/temporal/dynamicconfig.yaml → the compose
# file's namespace script → the Web UI (the ui-server the UI image runs) → the
# sandbox simulators, the worker and the starter with a configuration derived
# from deploy/offboard.yaml (codec and evidence signing on). Each service gets
# the environment its compose service sets, with only hosts, ports and paths
# changed. Long-running services are restarted when they die, as Compose's
# `restart: unless-stopped` does. Ctrl-C stops everything; state stays in
# .offboard/stack/ (PostgreSQL's data, evidence, secrets, logs).
#
# Loopback only, on ports that do not clash with `make run` (make run + 10000):
#   PostgreSQL 15432, Temporal 17233 (history 17234, matching 17235, worker
#   17239, HTTP 17243, membership 16933–16939), Web UI 18233, starter 18080,
#   codec server 18081, worker metrics 19090; the simulators on 127.0.0.2
#   (their usual ports 8101–8106 and 8636).
# `scripts/stack.sh temporal` starts PostgreSQL and Temporal only.
# OFFBOARD_STACK_PORT_OFFSET (at most 25000: Temporal keeps membership ports
# as a PostgreSQL smallint), OFFBOARD_STACK_SANDBOX_HOST and OFFBOARD_STACK_DIR
# move them (the tests run a second stack beside this one); OFFBOARD_STACK_BIN
# is where worker, starter and sandbox are (default bin/); OFFBOARD_STACK_OVERRIDES
# is YAML merged over the derived configuration (e.g. a short retention).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH=$ROOT/bin:$PATH
STATE=${OFFBOARD_STACK_DIR:-$ROOT/.offboard/stack}
OFF=${OFFBOARD_STACK_PORT_OFFSET:-10000}
SANDBOX_HOST=${OFFBOARD_STACK_SANDBOX_HOST:-127.0.0.2}
APPBIN=${OFFBOARD_STACK_BIN:-$ROOT/bin}
[ "$OFF" -le 25000 ] || { echo "OFFBOARD_STACK_PORT_OFFSET is at most 25000 (membership ports are a smallint in PostgreSQL)" >&2; exit 2; }
PG_PORT=$((5432 + OFF))
TEMPORAL_PORT=$((7233 + OFF))
UI_PORT=$((8233 + OFF))
STARTER_PORT=$((8080 + OFF))
CODEC_PORT=$((8081 + OFF))
METRICS_PORT=$((9090 + OFF))
LOGS=$STATE/logs
RUN=$STATE/run # one <service>.pid per running service; ready when all are up
SECRETS=$STATE/secrets
mkdir -p "$LOGS" "$RUN"
rm -f "$RUN"/*
supervisors=()
oneshot= # the setup script running now

say() { printf '\033[1mstack:\033[0m %s\n' "$*" >&2; }
fail() {
	say "$*"
	exit 1
}

stop() { # exit status
	trap - INT TERM EXIT
	touch "$RUN/stopping"
	say "stopping…"
	[ -z "$oneshot" ] || kill -TERM "$oneshot" 2>/dev/null || true
	# In reverse order of start: the server closes its connections before PostgreSQL stops.
	for ((i = ${#supervisors[@]} - 1; i >= 0; i--)); do
		kill -TERM "${supervisors[i]}" 2>/dev/null || true
		wait "${supervisors[i]}" 2>/dev/null || true
	done
	rm -f "$RUN"/*
	say "stopped. State is kept in ${STATE#"$ROOT"/}/."
	exit "$1"
}
trap 'stop 0' INT TERM
trap 'stop $?' EXIT

# supervise NAME SIGNAL CMD...: runs CMD, logging to logs/NAME.log, and starts
# it again when it dies (a second later); SIGNAL is what stops it.
supervise() {
	local name=$1 sig=$2
	shift 2
	(
		child=
		trap '[ -n "$child" ] && kill -'"$sig"' "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 0' TERM
		while :; do
			"$@" >>"$LOGS/$name.log" 2>&1 &
			child=$!
			echo "$child" >"$RUN/$name.pid"
			status=0
			wait "$child" || status=$?
			sleep 1 # Ctrl-C reaches some children directly: let stop() say so first
			[ -e "$RUN/stopping" ] && exit 0
			echo "$(date -u +%FT%TZ) stack: $name exited ($status); restarting" >>"$LOGS/$name.log"
			say "$name exited ($status); restarting it (logs/$name.log)"
		done
	) &
	supervisors+=($!)
}

wait_port() { # host port name [seconds]
	for _ in $(seq 1 $((${4:-60} * 10))); do
		if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	fail "$3 did not come up on $1:$2; see ${LOGS#"$ROOT"/}/$3.log"
}

# run_oneshot NAME CMD...: a compose one-shot, logged to logs/NAME.log; in the
# background, so that a TERM stops the stack at once.
run_oneshot() {
	local name=$1
	shift
	"$@" >>"$LOGS/$name.log" 2>&1 &
	oneshot=$!
	wait "$oneshot" || fail "$name failed; see ${LOGS#"$ROOT"/}/$name.log"
	oneshot=
}

# compose_env SERVICE NAME=VALUE...: the compose service's environment, overridden.
compose_env() { "$STATE/stackconfig" env "$@"; }

# What scripts/setup.sh stack installs.
v=$(sed -n 's/.*temporalio\/server:${TEMPORAL_VERSION:-\([0-9.]*\)}.*/\1/p' docker-compose.yml)
for b in temporal-server temporal-sql-tool temporal-ui-server; do
	[ -x "bin/$b" ] || fail "bin/$b is missing: run scripts/setup.sh stack (make stack does)"
done
[ "$(cat bin/temporal-server.version)" = "$v" ] || fail "bin/temporal-server is not $v (docker-compose.yml's): run scripts/setup.sh stack"
for b in worker starter sandbox; do
	[ -x "$APPBIN/$b" ] || fail "$APPBIN/$b is missing: make build"
done
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PGBIN/postgres" ] || fail "PostgreSQL is not installed: run scripts/setup.sh stack"
schema=$(cd / && GOFLAGS= go mod download -json "go.temporal.io/server@v$v" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')/schema/postgresql/v12
[ -d "$schema" ] || fail "no Temporal schema files at $schema"
ui_v=$(cat bin/temporal-ui-server.version)
ui_dir=$(cd / && GOFLAGS= go mod download -json "github.com/temporalio/ui-server/v2@v$ui_v" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -f "$ui_dir/config/docker.yaml" ] || fail "no Web UI configuration template in $ui_dir"

say "deriving the configuration from deploy/offboard.yaml…"
go build -o "$STATE/stackconfig" ./internal/testenv/stack/stackconfig
"$STATE/stackconfig" config -dir "$STATE" -temporal "127.0.0.1:$TEMPORAL_PORT" -metrics "127.0.0.1:$METRICS_PORT" \
	-starter "127.0.0.1:$STARTER_PORT" -codec "127.0.0.1:$CODEC_PORT" -ui "127.0.0.1:$UI_PORT" -sandbox-host "$SANDBOX_HOST" \
	-overrides "${OFFBOARD_STACK_OVERRIDES:-}"
pwfile=$SECRETS/postgres_password
[ -s "$pwfile" ] || (umask 077 && head -c 24 /dev/urandom | base64 >"$pwfile")

# PostgreSQL (the postgres:16 service): the temporal superuser with a password,
# as the image makes it from POSTGRES_USER and POSTGRES_PASSWORD_FILE.
# PostgreSQL refuses to run as root: as root, run it as Debian's postgres user.
pg_as=()
[ "$(id -u)" = 0 ] && pg_as=(setpriv --reuid=postgres --regid=postgres --init-groups --)
pgdata=$STATE/postgres
mkdir -p "$pgdata" "$STATE/pgsock"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$pgdata" "$STATE/pgsock"
chmod 700 "$pgdata"
if [ ! -s "$pgdata/PG_VERSION" ]; then
	say "initdb ${pgdata#"$ROOT"/}"
	initpw=$STATE/.initpw
	(umask 077 && cp "$pwfile" "$initpw")
	[ "$(id -u)" = 0 ] && chown postgres:postgres "$initpw"
	"${pg_as[@]}" "$PGBIN/initdb" -D "$pgdata" -U temporal --pwfile="$initpw" -A scram-sha-256 -E UTF8 >>"$LOGS/postgresql.log" 2>&1 ||
		fail "initdb failed; see logs/postgresql.log"
	rm -f "$initpw"
fi
# SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for every client).
supervise postgresql INT "${pg_as[@]}" "$PGBIN/postgres" -D "$pgdata" -p "$PG_PORT" \
	-c listen_addresses=127.0.0.1 -c unix_socket_directories="$STATE/pgsock"
# The compose health check: pg_isready -U temporal -d temporal.
for i in $(seq 1 600); do
	"$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U temporal && break
	[ "$i" = 600 ] && fail "PostgreSQL did not come up; see logs/postgresql.log"
	sleep 0.1
done

say "temporal-schema: deploy/temporal/setup-postgres.sh"
mapfile -t env_schema < <(compose_env temporal-schema POSTGRES_SEEDS=127.0.0.1 DB_PORT="$PG_PORT" \
	POSTGRES_PASSWORD_FILE="$pwfile" TEMPORAL_SCHEMA_DIR="$schema")
run_oneshot temporal-schema env "${env_schema[@]}" sh deploy/temporal/setup-postgres.sh

# The server image's entrypoint is `temporal-server start` with the embedded
# configuration template, filled from this environment; the compose file
# hands it the password from the secret file the same way.
mapfile -t env_temporal < <(compose_env temporal POSTGRES_SEEDS=127.0.0.1 DB_PORT="$PG_PORT" BIND_ON_IP=127.0.0.1 \
	DYNAMIC_CONFIG_FILE_PATH="$ROOT/deploy/temporal/dynamicconfig.yaml" \
	FRONTEND_GRPC_PORT="$TEMPORAL_PORT" FRONTEND_HTTP_PORT=$((7243 + OFF)) HISTORY_GRPC_PORT=$((7234 + OFF)) \
	MATCHING_GRPC_PORT=$((7235 + OFF)) WORKER_GRPC_PORT=$((7239 + OFF)) FRONTEND_MEMBERSHIP_PORT=$((6933 + OFF)) \
	HISTORY_MEMBERSHIP_PORT=$((6934 + OFF)) MATCHING_MEMBERSHIP_PORT=$((6935 + OFF)) WORKER_MEMBERSHIP_PORT=$((6939 + OFF)) \
	LOG_LEVEL=warn)
say "temporal: bin/temporal-server $v on 127.0.0.1:$TEMPORAL_PORT"
supervise temporal TERM env "${env_temporal[@]}" \
	sh -c 'POSTGRES_PWD=$(cat "$0") && export POSTGRES_PWD && exec temporal-server start' "$pwfile"
wait_port 127.0.0.1 "$TEMPORAL_PORT" temporal 120

say "temporal-namespace: deploy/temporal/setup-namespace.sh"
mapfile -t env_ns < <(compose_env temporal-namespace TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT")
run_oneshot temporal-namespace env "${env_ns[@]}" sh deploy/temporal/setup-namespace.sh

if [ "${1:-}" = temporal ]; then
	# scripts/stack.sh temporal: PostgreSQL and Temporal only (make bench runs its own workers).
	touch "$RUN/ready"
	say "Temporal $v on PostgreSQL at 127.0.0.1:$TEMPORAL_PORT, namespace offboard"
	echo "stack ready (temporal only). Ctrl-C stops it."
	wait
fi

# The Web UI: the ui-server the temporalio/ui image runs, with the image's
# configuration template (config/docker.yaml) and the compose environment;
# only bound to loopback.
mkdir -p "$STATE/ui/config"
{
	cat "$ui_dir/config/docker.yaml"
	grep -q '^host:' "$ui_dir/config/docker.yaml" || echo 'host: 127.0.0.1'
} >"$STATE/ui/config/docker.yaml"
mapfile -t env_ui < <(compose_env temporal-ui TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT" TEMPORAL_UI_PORT="$UI_PORT" \
	TEMPORAL_CODEC_ENDPOINT="http://localhost:$CODEC_PORT" TEMPORAL_CODEC_PASS_ACCESS_TOKEN=false \
	TEMPORAL_CORS_ORIGINS="http://localhost:$UI_PORT,http://127.0.0.1:$UI_PORT")
supervise temporal-ui TERM env "${env_ui[@]}" temporal-ui-server --root "$STATE/ui" --config config --env docker start

supervise sandbox TERM "$APPBIN/sandbox" -host "$SANDBOX_HOST" -people 200 -state "$STATE/sandbox"
wait_port "$SANDBOX_HOST" 8101 sandbox
wait_port "$SANDBOX_HOST" 8636 sandbox

mapfile -t env_worker < <(compose_env worker OFFBOARD_CONFIG="$STATE/offboard.yaml")
supervise worker TERM env "${env_worker[@]}" "$APPBIN/worker"
mapfile -t env_starter < <(compose_env starter OFFBOARD_CONFIG="$STATE/offboard.yaml")
supervise starter TERM env "${env_starter[@]}" "$APPBIN/starter" serve
wait_port 127.0.0.1 "$METRICS_PORT" worker
wait_port 127.0.0.1 "$STARTER_PORT" starter
wait_port 127.0.0.1 "$UI_PORT" temporal-ui
touch "$RUN/ready"

cat <<MSG

  The production stack of docker-compose.yml is running on loopback
  (Temporal $v on PostgreSQL; every target a simulator on $SANDBOX_HOST).

  Temporal          127.0.0.1:$TEMPORAL_PORT   namespace offboard
  Temporal Web UI   http://localhost:$UI_PORT   (payloads encrypted; decrypted via the codec server on :$CODEC_PORT)
  HRIS relay / API  http://127.0.0.1:$STARTER_PORT
  Worker health     http://127.0.0.1:$METRICS_PORT/healthz
  PostgreSQL        127.0.0.1:$PG_PORT  user temporal, password in ${pwfile#"$ROOT"/}
  Configuration     ${STATE#"$ROOT"/}/offboard.yaml (derived from deploy/offboard.yaml)
  Logs              ${LOGS#"$ROOT"/}/

  The CLI against it:
    OFFBOARD_CONFIG=${STATE#"$ROOT"/}/offboard.yaml bin/starter terminate -employee E1001 -email ada.lovelace1001@example.test
    OFFBOARD_CONFIG=${STATE#"$ROOT"/}/offboard.yaml bin/starter status -employee E1001
  The operator API: token stack-<name>-token for each name in relay.tokens, e.g.
    curl -s -H 'Authorization: Bearer stack-auditor@example.com-token' 127.0.0.1:$STARTER_PORT/deprovisions/E1001

  stack ready. Ctrl-C stops everything.
MSG
wait
