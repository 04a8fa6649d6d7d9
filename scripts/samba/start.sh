#!/usr/bin/env bash
# Start the Samba AD DC test peer in the foreground, from a fresh copy of the
# snapshot (provisioning first when the snapshot is missing or stale).
#
# Only one DC can own 127.0.0.1:636, so this waits for $OFFBOARD_SAMBA_LOCK; the
# lock descriptor is inherited by samba and released when its last process exits.
# It prints "offboard-samba: starting" on stdout right before exec'ing samba, so
# a caller polling LDAPS knows any DC answering from then on is this one.
# Stop it by killing the pid of this script (it becomes samba's master process).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

DIR=$OFFBOARD_SAMBA_DIR
exec 9>"$OFFBOARD_SAMBA_LOCK"
flock -w "${OFFBOARD_SAMBA_LOCK_WAIT:-300}" 9 || {
	echo "start.sh: another Samba DC still holds $OFFBOARD_SAMBA_LOCK" >&2
	exit 1
}

people=$OFFBOARD_SAMBA_PEOPLE
if [ -z "$people" ]; then
	people=$DIR.people.tsv
	(cd "$OFFBOARD_SAMBA_SCRIPTS/../.." && go run ./scripts/samba/people) >"$people"
	export OFFBOARD_SAMBA_PEOPLE=$people
fi
want=$(samba_stamp "$people")
if [ ! -f "$OFFBOARD_SAMBA_SNAPSHOT" ] || [ "$(cat "$OFFBOARD_SAMBA_SNAPSHOT.stamp" 2>/dev/null)" != "$want" ]; then
	echo "start.sh: no current snapshot at $OFFBOARD_SAMBA_SNAPSHOT, provisioning" >&2
	"$OFFBOARD_SAMBA_SCRIPTS/provision.sh" >&2
fi

rm -rf "$DIR"
tar -C "$(dirname "$DIR")" -xf "$OFFBOARD_SAMBA_SNAPSHOT"
echo "offboard-samba: starting"
exec samba --foreground --no-process-group -s "$DIR/etc/smb.conf"
