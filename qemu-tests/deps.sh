#!/usr/bin/env bash
# deps.sh: install the Debian packages that make demo, make test and make bench need on this
# machine, the one list internal/hostdeps/packages (the Go tests check the same list). Only
# what is missing, by dpkg-query per package, so that a package with no command counts too
# (ovmf, the boot managers). `make deps` runs it; make demo, make test and .ci/run run it first.
#
# DOCKERINIT_NO_INSTALL=1 leaves this machine untouched: a missing package fails with the line
# to run. Not as root, the same, with sudo.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
list=$(dirname "$here")/internal/hostdeps/packages
# refind's postinst would install rEFInd to this machine's ESP: the tests only copy it into images.
refind_seed='refind refind/install_to_esp boolean false'

log() { printf 'deps: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

command -v dpkg-query >/dev/null && command -v apt-get >/dev/null ||
	die "no dpkg-query or apt-get here: the tests need a Debian (bookworm) machine with the packages of $list"
mapfile -t pkgs < <(sed 's/#.*//' "$list" | awk 'NF { print $1 }')
[ ${#pkgs[@]} -gt 0 ] || die "$list lists no package"

# missing_of PKG... prints those of PKG that dpkg does not have installed ("install ok installed"),
# one a line. One dpkg-query for all: it prints nothing for a package it never heard of.
missing_of() {
	local -A installed=()
	local p status
	while IFS=$'\t' read -r p status; do
		[ "$status" = "install ok installed" ] && installed[$p]=1
	done < <(dpkg-query -W -f='${Package}\t${Status}\n' "$@" 2>/dev/null || true)
	for p; do
		[ -n "${installed[$p]:-}" ] || echo "$p"
	done
}

mapfile -t missing < <(missing_of "${pkgs[@]}")
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || [ "${DOCKERINIT_NO_INSTALL:-}" = 1 ]; then
	why="DOCKERINIT_NO_INSTALL=1 is set" sudo=
	[ "$(id -u)" = 0 ] || why="not root" sudo="sudo "
	lines="${sudo}apt-get update && ${sudo}apt-get install --no-install-recommends ${missing[*]}"
	if [[ " ${missing[*]} " = *" refind "* ]]; then
		lines="echo '$refind_seed' | ${sudo}debconf-set-selections && $lines"
	fi
	die "missing Debian packages ${missing[*]}, not installed ($why); install them with:
    $lines"
fi

log "installing the missing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || die "apt-get update failed (above): check the network and /etc/apt/sources.list*"
if [[ " ${missing[*]} " = *" refind "* ]]; then
	echo "$refind_seed" | debconf-set-selections
fi
aptlog=$(mktemp)
trap 'rm -f "$aptlog"' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$aptlog" 2>&1 || {
	tail -n 30 "$aptlog" >&2
	die "apt-get install ${missing[*]} failed (its last lines above)"
}
mapfile -t still < <(missing_of "${missing[@]}")
[ ${#still[@]} -eq 0 ] || die "apt-get install succeeded, but dpkg-query does not show ${still[*]} installed"
log "installed ${missing[*]}"
