# Shared settings for the Samba AD DC test peer; sourced by the other scripts.
# Everything is overridable from the environment.
OFFBOARD_SAMBA_DIR=${OFFBOARD_SAMBA_DIR:-/tmp/offboard-samba}
# The snapshot is a tar of the stopped, provisioned DIR; smb.conf holds
# absolute paths, so it is only ever restored to the same DIR.
OFFBOARD_SAMBA_SNAPSHOT=${OFFBOARD_SAMBA_SNAPSHOT:-$OFFBOARD_SAMBA_DIR.snapshot.tar}
OFFBOARD_SAMBA_REALM=${OFFBOARD_SAMBA_REALM:-CORP.EXAMPLE.TEST}
OFFBOARD_SAMBA_DOMAIN=${OFFBOARD_SAMBA_DOMAIN:-CORP}
# Sandbox-only secrets: this DC listens on loopback and lives in /tmp.
OFFBOARD_SAMBA_ADMINPASS=${OFFBOARD_SAMBA_ADMINPASS:-Offboard-Adm1n!}
OFFBOARD_SAMBA_USERPASS=${OFFBOARD_SAMBA_USERPASS:-Offboard-Us3r!}
# Tab-separated people to seed (employeeId login email first last department privileged);
# the Go test helper writes it from sandbox/demo. Without it, provision.sh asks `go run`.
OFFBOARD_SAMBA_PEOPLE=${OFFBOARD_SAMBA_PEOPLE:-}
OFFBOARD_SAMBA_LOCK=${OFFBOARD_SAMBA_LOCK:-$OFFBOARD_SAMBA_DIR.lock}
OFFBOARD_SAMBA_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

samba_stamp() {
	# Changes whenever the provisioning recipe or the seed data changes,
	# so a stale snapshot is rebuilt instead of silently reused.
	{
		cat "$OFFBOARD_SAMBA_SCRIPTS/provision.sh" "$OFFBOARD_SAMBA_SCRIPTS/seed.py" "$OFFBOARD_SAMBA_SCRIPTS/env.sh"
		echo "$OFFBOARD_SAMBA_DIR $OFFBOARD_SAMBA_REALM $OFFBOARD_SAMBA_DOMAIN $OFFBOARD_SAMBA_ADMINPASS $OFFBOARD_SAMBA_USERPASS"
		[ -n "$1" ] && cat "$1"
		samba --version
	} | sha256sum | cut -d' ' -f1
}
