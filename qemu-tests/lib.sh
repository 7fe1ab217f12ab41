# lib.sh: what fixture.sh and stores.sh share. Sourced after each defines log().
# Both scripts' cache keys include this file.

die() {
	log "error: $*"
	exit 1
}

# need_packages fails naming every missing Debian package at once; each argument is
# COMMAND:PACKAGE.
need_packages() {
	local missing=() pair
	for pair in "$@"; do
		command -v "${pair%%:*}" >/dev/null || missing+=("${pair##*:}")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
		die "missing packages: ${missing[*]}; install them with: apt-get install ${missing[*]}"
	fi
}

# lock takes OUTDIR's lock for the rest of the process.
lock() {
	[ "${DOCKERINIT_FIXTURE_LOCKED:-}" = 1 ] && return
	exec {lockfd}>"$1/.lock"
	if ! flock -n "$lockfd"; then
		log "waiting for another user of $1 (a test run or make demo)"
		flock "$lockfd"
	fi
}

# mirror is the Debian mirror apt uses here, so debootstrap goes where apt-get goes.
mirror() {
	if [ -n "${DOCKERINIT_MIRROR:-}" ]; then
		echo "$DOCKERINIT_MIRROR"
		return
	fi
	local m
	m=$(grep -hoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
		/etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 | tr -d ' ' || true)
	echo "${m:-http://deb.debian.org/debian}"
}

# make_toplayer fills the top layer folder with one entry of each kind the layer semantics cover.
make_toplayer() {
	local t=$1
	mkdir -p "$t/etc" "$t/root" "$t/opt/toplayer/empty"
	chmod 0700 "$t/root"
	echo dockerinit-top >"$t/etc/hostname"
	: >"$t/etc/.wh.motd" # OCI whiteout: the image's /etc/motd must be gone
	echo "dotfile from the top layer" >"$t/root/.dockerinit-dotfile"
	printf '#!/bin/sh\necho setuid test file\n' >"$t/opt/toplayer/setuid"
	chown 1234:1234 "$t/opt/toplayer/setuid"
	chmod 4755 "$t/opt/toplayer/setuid" # after chown, which clears setuid
	echo "one inode, two names" >"$t/opt/toplayer/link-a"
	ln "$t/opt/toplayer/link-a" "$t/opt/toplayer/link-b"
	echo "carries an xattr" >"$t/opt/toplayer/xattr"
	setfattr -n user.dockerinit -v top "$t/opt/toplayer/xattr"
	ln -s link-a "$t/opt/toplayer/symlink"
	echo "dated 2001-02-03" >"$t/opt/toplayer/dated"
	touch -d '2001-02-03 04:05:06 UTC' "$t/opt/toplayer/dated"
}
