#!/usr/bin/env bash
# Installs what `make run` and `make test` need, only when it is missing.
# The one place every install step lives: the Makefile and .ci/run call it.
#
#   scripts/setup.sh run    Temporal CLI (dev server + Web UI) into bin/
#   scripts/setup.sh test   the above, plus workflowcheck, staticcheck and
#                           Debian packages: Samba AD DC (LDAP tests), chromium (report screenshot)
#   scripts/setup.sh stack  the Temporal CLI, plus PostgreSQL and netcat (Debian) and the
#                           Temporal server, temporal-sql-tool and the Web UI server at
#                           docker-compose.yml's versions, built into bin/ (`make stack`,
#                           the stack test layer, make bench)
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

apt_install() { # Debian packages, installed only when missing
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
		say "missing Debian packages: ${missing[*]} — install them as root (apt-get install ${missing[*]})"
		exit 1
	fi
	local SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	say "installing Debian packages: ${missing[*]} (about a minute)"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

if [ "$what" = stack ]; then
	# The production stack without containers (scripts/stack.sh): PostgreSQL
	# from Debian (netcat for the compose file's schema script, as in the
	# admin-tools image), and the Temporal server, its SQL tool and the Web UI
	# server from source at the versions docker-compose.yml runs.
	apt_install postgresql netcat-openbsd
	v=$(sed -n 's/.*temporalio\/server:\${TEMPORAL_VERSION:-\([0-9.]*\)}.*/\1/p' docker-compose.yml)
	[ -n "$v" ] || { say "no temporalio/server version in docker-compose.yml"; exit 1; }
	ui=$(sed -n 's/.*temporalio\/ui:\${TEMPORAL_UI_VERSION:-\([0-9.]*\)}.*/\1/p' docker-compose.yml)
	[ -n "$ui" ] || { say "no temporalio/ui version in docker-compose.yml"; exit 1; }
	server_tool() { # bin name, package, binary go install makes [, version]
		local name=$1 pkg=$2 built=$3 v=${4:-$v}
		if [ ! -x "$BIN/$name" ] || [ "$(cat "$BIN/$name.version" 2>/dev/null)" != "$v" ]; then
			say "building $name $v ($pkg) — about 4 minutes the first time"
			local tmp; tmp=$(mktemp -d)
			GOBIN=$tmp GOFLAGS= go install "$pkg@v$v"
			mv "$tmp/$built" "$BIN/$name" && rmdir "$tmp"
			echo "$v" >"$BIN/$name.version"
		fi
	}
	server_tool temporal-server go.temporal.io/server/cmd/server server
	server_tool temporal-sql-tool go.temporal.io/server/cmd/tools/sql sql
	# The server the temporalio/ui image runs (the Temporal CLI embeds it but
	# serves it only for its own dev server).
	server_tool temporal-ui-server github.com/temporalio/ui-server/v2/cmd/server server "$ui"
	# The schema files the sql tool applies and the UI's configuration template.
	(cd / && GOFLAGS= go mod download "go.temporal.io/server@v$v" "github.com/temporalio/ui-server/v2@v$ui")
	exit 0
fi

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
