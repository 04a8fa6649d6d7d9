#!/usr/bin/env bash
# `make run`: the whole service on the embedded default, on this machine.
# Temporal dev server (file-backed under .offboard/, Web UI on :8233), the
# sandbox simulators, the worker and the starter. Ctrl-C stops everything it
# started; the next run resumes the workflows that were in flight.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=$PWD/.offboard
mkdir -p "$STATE/logs"
pids=()

stop() {
	trap - INT TERM EXIT
	echo
	echo "stopping…"
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	echo "stopped. State is kept in .offboard/: the next 'make run' resumes in-flight workflows."
	exit 0
}
trap stop INT TERM EXIT

wait_port() { # port name
	for _ in $(seq 1 300); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "$2 did not come up on port $1; see .offboard/logs/$2.log" >&2
	exit 1
}

# The evidence signing key of the embedded default (evidence.signingKey).
[ -f "$STATE/evidence.key" ] || bin/starter evidence keygen --out "$STATE/evidence.key" >/dev/null
# The payload encryption key of the embedded default (codec.keys): made once,
# kept with the state, since the histories in .offboard/temporal.db need it.
[ -f "$STATE/codec.key" ] || (umask 077 && head -c 32 /dev/urandom | base64 >"$STATE/codec.key")

sa=()
for a in EmployeeId=Keyword DeprovisionStatus=Keyword Privileged=Bool LegalHold=Bool SLABreached=Bool; do
	sa+=(--search-attribute "$a")
done
bin/temporal server start-dev \
	--ip 127.0.0.1 --port 7233 --ui-port 8233 \
	--ui-codec-endpoint http://localhost:8081 \
	--db-filename "$STATE/temporal.db" \
	--sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal \
	"${sa[@]}" --log-level warn >"$STATE/logs/temporal.log" 2>&1 &
pids+=($!)
wait_port 7233 temporal
wait_port 8233 temporal-ui

bin/sandbox -people 200 >"$STATE/logs/sandbox.log" 2>&1 &
pids+=($!)
wait_port 8101 sandbox

bin/worker >"$STATE/logs/worker.log" 2>&1 &
pids+=($!)
wait_port 9090 worker

bin/starter serve >"$STATE/logs/starter.log" 2>&1 &
pids+=($!)
wait_port 8080 starter

cat <<MSG

  Offboard is running on the embedded default (every target is a local simulator).

  Temporal Web UI   http://localhost:8233   (payloads encrypted; decrypted via the codec server on :8081)
  HRIS relay / API  http://localhost:8080   (starter serve)
  Worker health     http://localhost:9090/healthz
  Logs              .offboard/logs/

  Deprovision a sandbox user now:
    bin/starter terminate -employee E1001 -email ada.lovelace1001@example.test
    bin/starter status -employee E1001
  A privileged one, which waits for an approver:
    bin/starter terminate -employee E1010 -email dennis.lovelace1010@example.test -privileged
    bin/starter status -employee E1010      # shows the plan digest
    bin/starter approve -employee E1010 -by alice@example.test -digest <plan digest>
  What the simulator now shows:
    curl -s localhost:8101/_sandbox/users/ada.lovelace1001@example.test
  The operator API (sandbox tokens are sandbox-<name>-token):
    curl -s -H 'Authorization: Bearer sandbox-auditor-token' localhost:8080/deprovisions/E1001
  Evidence of closed runs (archived every minute): .offboard/evidence/

  Ctrl-C stops everything.
MSG
status=0
wait -n "${pids[@]}" || status=$?
# Ctrl-C reaches every component too: they stop cleanly (0) or by SIGINT
# or SIGTERM (130, 143). Anything else (1, a SIGKILL's 137 …) is a failure.
case $status in
0 | 130 | 143) ;;
*) echo "a component failed (exit status $status); see .offboard/logs/" >&2 ;;
esac
