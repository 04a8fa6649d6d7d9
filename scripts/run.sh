#!/usr/bin/env bash
# `make run`: the whole service on the embedded default, on this machine.
# Temporal dev server (file-backed under .offboard/, Web UI on :8233), the
# sandbox simulators, the worker and the starter, all on loopback. Ctrl-C
# stops everything it started; the next run resumes the workflows that were
# in flight.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=$PWD/.offboard
mkdir -p "$STATE/logs"
pids=()
declare -A names # pid → component, so a failure names what failed

# Every port make run opens (the README's table lists the same ones).
declare -A ports=(
	[7233]="Temporal dev server (gRPC)" [8233]="Temporal Web UI"
	[8101]="sandbox: Okta" [8102]="sandbox: Microsoft Graph" [8103]="sandbox: AWS IAM"
	[8104]="sandbox: SCIM app crm" [8105]="sandbox: SCIM app wiki"
	[8106]="sandbox: AD admin view" [8107]="sandbox: Splunk HEC (GET /counts)" [8108]="sandbox: HR roster (BambooHR, Workday)" [8636]="sandbox: AD (LDAPS)"
	[8109]="sandbox: AWS Secrets Manager"
	[8110]="sandbox: identity provider events (SSF, Okta hook)" [8111]="sandbox: SSF relying party"
	[9090]="worker health and metrics" [8080]="starter (HRIS relay, operator API)"
	[8081]="starter (codec server for the Web UI)"
)

stop() {
	trap - INT TERM EXIT
	echo
	echo "stopping…"
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	echo "stopped. State is kept in .offboard/: the next 'make run' resumes in-flight workflows."
	exit "${1:-0}"
}
trap stop INT TERM EXIT

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# who_listens PORT: "pid 123 (temporal)" when ss can tell, else nothing.
who_listens() {
	command -v ss >/dev/null || return 0
	ss -Hltnp "sport = :$1" 2>/dev/null |
		sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/pid \2 (\1)/p' | head -n 1
}

# A port taken by something else would make a component fail after the
# banner, or worse, make the script believe it came up: look first.
busy=0
for port in $(printf '%s\n' "${!ports[@]}" | sort -n); do
	listening "$port" || continue
	busy=1
	who=$(who_listens "$port")
	echo "make run: port $port (${ports[$port]}) is already in use${who:+ by $who}." >&2
done
if [ "$busy" = 1 ]; then
	cat >&2 <<'MSG'
Nothing was started. If an earlier `make run` is still running, stop it with Ctrl-C
in its terminal (or kill the pid above); otherwise stop whatever holds the port.
`ss -ltnp` lists every listener.
MSG
	trap - EXIT
	exit 1
fi

# start NAME CMD…: runs a component in the background, logging to .offboard/logs/NAME.log.
start() {
	local name=$1
	shift
	"$@" >"$STATE/logs/$name.log" 2>&1 &
	pids+=($!)
	names[$!]=$name
}

# died NAME STATUS: names the component that failed and shows the end of its log.
died() {
	echo "make run: $1 exited (status $2). The end of .offboard/logs/$1.log:" >&2
	tail -n 15 "$STATE/logs/$1.log" | sed 's/^/  | /' >&2
}

wait_port() { # port component
	local pid=${pids[-1]}
	for _ in $(seq 1 300); do
		if listening "$1"; then return 0; fi
		if ! kill -0 "$pid" 2>/dev/null; then
			local status=0
			wait "$pid" || status=$?
			died "$2" "$status"
			stop 1
		fi
		sleep 0.1
	done
	echo "make run: $2 did not open port $1 within 30 s; see .offboard/logs/$2.log" >&2
	stop 1
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
# --ip binds the frontend, the Web UI and the server's own HTTP API and
# metrics ports (random free ones) to loopback.
start temporal bin/temporal server start-dev \
	--ip 127.0.0.1 --ui-ip 127.0.0.1 --port 7233 --ui-port 8233 \
	--ui-codec-endpoint http://localhost:8081 \
	--db-filename "$STATE/temporal.db" \
	--sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal \
	--dynamic-config-value system.enableActivityEagerExecution=true \
	--dynamic-config-value history.transferProcessorMaxPollRPS=200 \
	"${sa[@]}" --log-level warn
wait_port 7233 temporal
wait_port 8233 temporal

start sandbox bin/sandbox -people 200
wait_port 8101 sandbox
wait_port 8636 sandbox
wait_port 8108 sandbox
wait_port 8109 sandbox
wait_port 8111 sandbox

start worker bin/worker
wait_port 9090 worker

start starter bin/starter serve
wait_port 8080 starter
wait_port 8081 starter

cat <<MSG

  Offboard is running on the embedded default (every target is a local simulator).
  Everything listens on 127.0.0.1 only.

  Temporal Web UI   http://localhost:8233   (payloads encrypted; decrypted via the codec server on :8081)
  HRIS relay / API  http://localhost:8080   (starter serve)
  Worker health     http://localhost:9090/healthz
  Logs              .offboard/logs/

  Deprovision a sandbox user now (a termination: contained in seconds, its accounts
  deleted after the 30-day retention, when the run closes):
    bin/starter terminate -employee E1001 -email ada.lovelace1001@example.test
    bin/starter status -employee E1001
  A privileged one, which waits for an approver:
    bin/starter terminate -employee E1010 -email dennis.lovelace1010@example.test -privileged
    bin/starter status -employee E1010      # shows the plan and its digest
    OFFBOARD_TOKEN=sandbox-alice-token bin/starter approve -employee E1010 -digest <plan digest>
  A role change, which closes in seconds; its evidence is archived when it closes:
    bin/starter terminate -employee E1003 -email grace.lovelace1003@example.test -kind role_change -new-role sales-engineer
    bin/starter evidence verify .offboard/evidence/deprovision-E1003 --public-key <(bin/starter evidence public-key)
    bin/starter evidence summary
  Events both ways: the sandbox's identity provider tells the relay a user was
  deactivated (Okta event hook) or disabled (a signed Shared Signals SET); each
  starts that person's run, and Offboard's SETs reach a relying party:
    curl -s -XPOST localhost:8110/_sandbox/okta-hook/send -d '{"email":"ken.hopper1028@example.test"}'
    curl -s -XPOST localhost:8110/_sandbox/ssf/send -d '{"event":"account-disabled","email":"grace.hopper1023@example.test"}'
    curl -s localhost:8111/received      # SETs Offboard pushed, verified against :8080/ssf/jwks.json
    curl -s localhost:8107/counts        # SIEM events (Splunk HEC) by id
  What the simulator now shows:
    curl -s localhost:8101/_sandbox/users/ada.lovelace1001@example.test
  The operator API (sandbox tokens are sandbox-<name>-token):
    curl -s -H 'Authorization: Bearer sandbox-auditor-token' localhost:8080/deprovisions/E1001

  Ctrl-C stops everything.
MSG
status=0
dead=
wait -n -p dead "${pids[@]}" || status=$?
# Ctrl-C reaches every component too: they stop cleanly (0) or by SIGINT
# or SIGTERM (130, 143). Anything else (1, a SIGKILL's 137 …) is a failure,
# and so is a component that stops on its own while the others run.
case $status in
130 | 143) ;;
*) died "${names[$dead]:-a component}" "$status" ;;
esac
stop 1
