#!/usr/bin/env bash
# Provision a loopback-only Samba AD DC for Offboard's tests in $OFFBOARD_SAMBA_DIR,
# give it a CA-signed certificate Go accepts, seed the demo people and groups,
# and save a snapshot (tar of the stopped directory) that start.sh restores.
#
# Needs root and Debian's packages: samba samba-ad-dc samba-ad-provision
# samba-dsdb-modules samba-vfs-modules winbind ldb-tools (and openssl).
# Usage: scripts/samba/provision.sh        (≈ 20 s; nothing is left running)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

for tool in samba samba-tool openssl /usr/bin/python3; do
	command -v "$tool" >/dev/null || {
		echo "provision.sh: $tool not found; install samba samba-ad-dc samba-ad-provision samba-dsdb-modules samba-vfs-modules winbind ldb-tools openssl" >&2
		exit 1
	}
done

DIR=$OFFBOARD_SAMBA_DIR
people=$OFFBOARD_SAMBA_PEOPLE
if [ -z "$people" ]; then
	people=$DIR.people.tsv
	(cd "$OFFBOARD_SAMBA_SCRIPTS/../.." && go run ./scripts/samba/people) >"$people"
fi

rm -rf "$DIR"
mkdir -p "$DIR/etc" "$DIR/tls" "$DIR/run" "$DIR/log"

samba-tool domain provision \
	--targetdir="$DIR" \
	--realm="$OFFBOARD_SAMBA_REALM" --domain="$OFFBOARD_SAMBA_DOMAIN" \
	--server-role=dc --dns-backend=SAMBA_INTERNAL \
	--adminpass="$OFFBOARD_SAMBA_ADMINPASS" \
	--host-name=dc1 --host-ip=127.0.0.1 \
	--option="interfaces = lo" \
	--option="bind interfaces only = yes" \
	--option="server services = ldap" \
	--option="dns update command = /bin/true" \
	--option="spn update command = /bin/true" \
	--option="pid directory = $DIR/run" \
	--option="log file = $DIR/log/samba.log" \
	--option="tls enabled = yes" \
	--option="tls keyfile = $DIR/tls/server.key" \
	--option="tls certfile = $DIR/tls/server.crt" \
	--option="tls cafile = $DIR/tls/ca.crt" \
	>"$DIR/log/provision.log" 2>&1 || { tail -30 "$DIR/log/provision.log" >&2; exit 1; }
# Provisioning copies the host's resolver as a forwarder; this DC serves no DNS.
sed -i '/dns forwarder/d' "$DIR/etc/smb.conf"

# Samba's own certificate has no subjectAltName, which Go rejects: make a CA
# and a server certificate carrying the names clients dial.
(
	cd "$DIR/tls"
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Offboard test CA" \
		-keyout ca.key -out ca.crt 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj "/CN=dc1.corp.example.test" \
		-keyout server.key -out server.csr 2>/dev/null
	printf 'subjectAltName=DNS:localhost,DNS:dc1.corp.example.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >ext.cnf
	openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
		-extfile ext.cnf -out server.crt 2>/dev/null
	chmod 600 server.key ca.key
	rm -f server.csr ext.cnf ca.srl
)

# Seed offline, straight into sam.ldb: one python process instead of a samba-tool per user.
/usr/bin/python3 "$OFFBOARD_SAMBA_SCRIPTS/seed.py" "$DIR/etc/smb.conf" "$people" "$OFFBOARD_SAMBA_USERPASS" \
	>>"$DIR/log/provision.log" 2>&1 || { tail -30 "$DIR/log/provision.log" >&2; exit 1; }

stamp=$(samba_stamp "$people")
echo "$stamp" >"$DIR/snapshot.stamp"
tar -C "$(dirname "$DIR")" -S -cf "$OFFBOARD_SAMBA_SNAPSHOT.tmp" "$(basename "$DIR")"
mv "$OFFBOARD_SAMBA_SNAPSHOT.tmp" "$OFFBOARD_SAMBA_SNAPSHOT"
echo "$stamp" >"$OFFBOARD_SAMBA_SNAPSHOT.stamp"
echo "provisioned $DIR, snapshot $OFFBOARD_SAMBA_SNAPSHOT"
