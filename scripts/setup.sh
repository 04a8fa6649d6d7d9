#!/usr/bin/env bash
# Installs what `make run` and `make test` need, only when it is missing.
# The one place every install step lives: the Makefile and .ci/run call it.
#
#   scripts/setup.sh run    Temporal CLI (dev server + Web UI) into bin/
#   scripts/setup.sh test   the above, plus workflowcheck, staticcheck and
#                           Debian packages: Samba AD DC (LDAP tests), chromium (report screenshot)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-test}
BIN=$PWD/bin
mkdir -p "$BIN"

TEMPORAL_CLI_VERSION=v1.5.1
WORKFLOWCHECK_VERSION=v0.6.0
STATICCHECK_VERSION=v0.8.2

say() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

go_tool() { # name module@version
	local name=$1 pkg=$2
	if [ ! -x "$BIN/$name" ]; then
		say "building $name ($pkg)…"
		GOBIN=$BIN GOFLAGS= go install "$pkg"
	fi
}

if [ ! -x "$BIN/temporal" ]; then
	say "installing the Temporal CLI $TEMPORAL_CLI_VERSION into bin/ — about 6 minutes the first time (later runs reuse it)"
fi
go_tool temporal "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION"

[ "$what" = run ] && exit 0

go_tool workflowcheck "go.temporal.io/sdk/contrib/tools/workflowcheck@$WORKFLOWCHECK_VERSION"
go_tool staticcheck "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"

# Debian packages: Samba's AD DC for the LDAP connector tests, openssl for its
# certificates, chromium for the evidence report screenshot.
pkgs=(samba samba-ad-dc samba-ad-provision samba-dsdb-modules samba-vfs-modules winbind ldb-tools openssl chromium)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
		say "missing Debian packages: ${missing[*]} — install them as root (apt-get install ${missing[*]})"
		exit 1
	fi
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	say "installing Debian packages: ${missing[*]} (about a minute)"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
