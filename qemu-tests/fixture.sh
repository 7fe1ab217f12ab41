#!/usr/bin/env bash
# fixture.sh: the disk the QEMU tests and `make demo` boot, made with real parts.
#
#   fixture.sh OUTDIR DOCKERINIT          make OUTDIR/disk.img (reused while its inputs are unchanged);
#                                         DOCKERINIT is the built binary, which sample_image ships
#   fixture.sh list OUTDIR                print the Docker store listing of OUTDIR/disk.img (mounted read-only)
#   fixture.sh mkboot OUTDIR IMAGE BOOTDIR MKBOOTIMG [ARGS...]
#                                         run MKBOOTIMG --docker-root <disk>/docker --image IMAGE --out BOOTDIR
#   fixture.sh load OUTDIR BASEDIR        make OUTDIR/disk.img for the bench's load cases (reused while
#                                         BASEDIR's fixture.stamp and the load functions are unchanged): a copy of
#                                         BASEDIR/disk.img, a finished fixture only read (under its lock), on
#                                         which dockerd builds LOAD_IMAGES images and deep_image (below)
#
# The disk is a whole-disk btrfs labelled "linux" holding:
#   docker/       a Docker data root written by a real dockerd (docker.io, btrfs graph driver):
#                 debian-base (debootstrap, docker import), sample_image and other_image (docker build
#                 of images/*/Dockerfile); sample_image COPYs the dockerinit binary, for `dockerinit status`
#   boot_docker/  the top layer: hostname, a dotfile, a setuid file owned by 1234:1234, a hardlink
#                 pair, an xattr, a symlink, an empty directory, a dated file and a whiteout
# OUTDIR/store.list is the listing of docker/ taken right after dockerd stopped; compare it with
# `fixture.sh list OUTDIR` to prove that booting never modified the Docker store.
#
# Needs root. The debootstrap root is cached as a tarball in $DOCKERINIT_CACHE
# (default /var/cache/dockerinit-tests), keyed by the suite, the package list and prep_root.
# Every subcommand holds a lock on OUTDIR; a caller already holding it sets DOCKERINIT_FIXTURE_LOCKED=1.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SUITE=bookworm
# Lean, but enough for a systemd boot to a serial login prompt and for testinit's checks.
PACKAGES=linux-image-amd64,systemd-sysv,udev,kmod,attr
DISK_SIZE=4G
CACHE=${DOCKERINIT_CACHE:-/var/cache/dockerinit-tests}
DOCKER=/usr/bin/docker # docker.io's client: /usr/local/bin/docker may be an unrelated one
DOCKERD=/usr/sbin/dockerd

log() { printf 'fixture: %s\n' "$*" >&2; }
# shellcheck source=lib.sh
. "$here/lib.sh"

# need_tools fails naming every missing Debian package at once.
need_tools() {
	[ "$(id -u)" = 0 ] || die "must run as root (loop mounts, dockerd, debootstrap)"
	need_packages debootstrap:debootstrap "$DOCKERD":docker.io "$DOCKER":docker.io \
		mkfs.btrfs:btrfs-progs btrfs:btrfs-progs setfattr:attr zstd:zstd \
		flock:util-linux losetup:mount mount:mount
}



# prep_root makes a debootstrap tree bootable by systemd on a serial console under dockerinit.
prep_root() {
	local r=$1
	chroot "$r" passwd -d root >/dev/null # empty root password: the demo logs in as root
	printf '%s\n' '# The root file system is the dockerinit rw layer (btrfs subvol=docker_rwlayer),' \
		'# already mounted read-write by the initramfs: nothing to mount here.' >"$r/etc/fstab"
	echo debian-base >"$r/etc/hostname"
	printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
	# Debian's own initramfs is never used: dockerinit's replaces it.
	rm -f "$r"/boot/initrd.img-* "$r/initrd.img" "$r/initrd.img.old" "$r/etc/resolv.conf"
	find "$r/var/cache/apt/archives" "$r/var/lib/apt/lists" -type f -delete
}

# base_tarball sets tarball to the cached debian-base tarball, making it if needed.
# (Not called in $(...): its cleanup must run in this shell's EXIT trap.)
base_tarball() {
	local key work
	key=$({
		echo "$SUITE $PACKAGES"
		declare -f prep_root
	} | sha256sum | cut -c1-16)
	tarball=$CACHE/debian-$SUITE-$key.tar.zst
	mkdir -p "$CACHE"
	exec {cachefd}>"$CACHE/.lock"
	flock "$cachefd"
	if [ -f "$tarball" ]; then
		log "debian-base: cached $tarball"
		return
	fi
	work=$(mktemp -d "$CACHE/work.XXXXXX")
	cleanup_paths+=("$work")
	local start=$SECONDS mirror
	mirror=$(mirror)
	log "debian-base: debootstrap $SUITE from $mirror with $PACKAGES (a few minutes, once)"
	debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$work/root" "$mirror" \
		>"$work/debootstrap.log" 2>&1 || {
		tail -n 30 "$work/debootstrap.log" >&2
		die "debootstrap failed (log above)"
	}
	prep_root "$work/root"
	tar --numeric-owner -C "$work/root" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
		-c . | zstd -q -T0 -o "$work/root.tar.zst"
	mv "$work/root.tar.zst" "$tarball"
	log "debian-base: built $tarball in $((SECONDS - start)) s"
}


# list_store prints every path under docker/ with its type, mode, owner, size, mtime and link target.
list_store() {
	(cd "$1" && find docker -printf '%p %y %#m %U:%G %s %T@ %l\n' | LC_ALL=C sort)
}

cleanup_paths=()
tarball=
mnt=
dockerd_pid=
cleanup() {
	local rc=$?
	[ -n "$dockerd_pid" ] && stop_dockerd
	if [ -n "$mnt" ] && mountpoint -q "$mnt"; then
		umount "$mnt" || log "could not unmount $mnt: unmount it by hand before using the disk"
	fi
	local p m
	for p in "${cleanup_paths[@]}"; do
		# A failed debootstrap can leave proc/sys mounted inside its tree.
		awk -v p="$p/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
			umount "$m" || true
		done
		rm -rf "$p"
	done
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_dockerd() {
	local data_root=$1 run=$2 log_file=$3
	echo '{}' >"$run/daemon.json" # ignore the host's /etc/docker/daemon.json
	export DOCKER_HOST=unix://$run/docker.sock DOCKER_CONFIG=$run/client DOCKER_BUILDKIT=0
	"$DOCKERD" --config-file "$run/daemon.json" --storage-driver btrfs --data-root "$data_root" \
		-H "$DOCKER_HOST" --exec-root "$run/exec" --pidfile "$run/docker.pid" \
		--bridge=none --iptables=false --ip-masq=false >"$log_file" 2>&1 &
	dockerd_pid=$!
	for _ in $(seq 120); do
		"$DOCKER" version >/dev/null 2>&1 && return
		kill -0 "$dockerd_pid" 2>/dev/null || {
			dockerd_pid=
			tail -n 20 "$log_file" >&2
			die "dockerd exited while starting (log above, whole log in $log_file)"
		}
		sleep 0.5
	done
	die "dockerd did not answer on $DOCKER_HOST within 60 s (log: $log_file)"
}

stop_dockerd() {
	local pid=$dockerd_pid
	dockerd_pid=
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 60); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "dockerd did not stop within 30 s of SIGTERM: killing it"
		kill -KILL "$pid"
	fi
	wait "$pid" 2>/dev/null || true
}

fixture_key() {
	local dockerinit=$1
	{
		cat "${BASH_SOURCE[0]}" "$here/lib.sh" "$dockerinit"
		cd "$here/images"
		find . -type f -printf '%p %m\n' | LC_ALL=C sort
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0 cat
	} | sha256sum | cut -d' ' -f1
}

cmd_build() {
	local out=$1 dockerinit=$2 key start=$SECONDS run t
	[ -f "$dockerinit" ] && [ -x "$dockerinit" ] || die "$dockerinit: want the built dockerinit binary (make build; bin/dockerinit)"
	key=$(fixture_key "$dockerinit")
	if [ -f "$out/disk.img" ] && [ -f "$out/store.list" ] && [ "$(cat "$out/fixture.stamp" 2>/dev/null)" = "$key" ]; then
		log "reusing $out/disk.img (inputs unchanged)"
		return
	fi
	rm -f "$out/disk.img" "$out/disk.img.tmp" "$out/store.list" "$out/fixture.stamp"
	base_tarball

	truncate -s "$DISK_SIZE" "$out/disk.img.tmp"
	mkfs.btrfs -q -f -L linux "$out/disk.img.tmp" >/dev/null
	mnt=$out/mnt
	mkdir -p "$mnt"
	mount -o loop "$out/disk.img.tmp" "$mnt"
	btrfs subvolume create "$mnt/docker" >/dev/null

	# A short directory: unix socket paths are limited to 107 bytes.
	run=$(mktemp -d /tmp/dockerinit-fixture.XXXXXX)
	cleanup_paths+=("$run")
	t=$SECONDS
	start_dockerd "$mnt/docker" "$run" "$out/dockerd.log"
	log "dockerd up in $((SECONDS - t)) s (log: $out/dockerd.log)"
	t=$SECONDS
	zstd -dc "$tarball" | "$DOCKER" import - debian-base >/dev/null
	log "docker import debian-base: $((SECONDS - t)) s"
	local image
	for image in sample_image other_image; do
		t=$SECONDS
		# The init scripts must be executable in the image whatever mode the checkout gave them.
		cp -r "$here/images/$image" "$run/$image"
		# As the README tells users: the image ships the binary for `dockerinit status`.
		[ "$image" = sample_image ] && install -m 0755 "$dockerinit" "$run/$image/dockerinit"
		find "$run/$image" -name '*init' -exec chmod 0755 {} +
		"$DOCKER" build -t "$image" "$run/$image" >>"$out/build.log" 2>&1 || {
			tail -n 20 "$out/build.log" >&2
			die "docker build $image failed (log above)"
		}
		log "docker build $image: $((SECONDS - t)) s"
	done
	"$DOCKER" images >&2
	stop_dockerd

	make_toplayer "$mnt/boot_docker"
	list_store "$mnt" >"$out/store.list"
	umount "$mnt"
	mnt=
	mv "$out/disk.img.tmp" "$out/disk.img"
	echo "$key" >"$out/fixture.stamp"
	log "made $out/disk.img in $((SECONDS - start)) s"
}

# mount_ro mounts OUTDIR's disk read-only without log replay, so nothing at all is written to it.
mount_ro() {
	local out=$1
	[ -f "$out/disk.img" ] || die "$out/disk.img does not exist: run $0 $out first"
	mnt=$out/mnt
	mkdir -p "$mnt"
	mount -o loop,ro,rescue=nologreplay "$out/disk.img" "$mnt"
}

cmd_list() {
	mount_ro "$1"
	list_store "$mnt"
}

cmd_mkboot() {
	local out=$1 image=$2 bootdir=$3 mkbootimg=$4
	shift 4
	mount_ro "$out"
	"$mkbootimg" --docker-root "$mnt/docker" --image "$image" --out "$bootdir" "$@"
}

# --- The bench's load fixture (fixture.sh load OUTDIR BASEDIR) ---
# A disk of its own, so that the normal fixture and make test never build it or wait for it.
# What dockerd adds to the copy of the normal fixture's store:
LOAD_IMAGES=200 # load_image_001..: FROM sample_image + one LABEL each (distinct image IDs, no new layer)
LOAD_LAYERS=100 # deep_image: sample_image with one COPY of a tiny file a layer, this many layers in all

# load_key is the load disk's cache key: the base fixture's own key (its store) and how the load
# images are made.
load_key() {
	{
		cat "$1/fixture.stamp"
		echo "$LOAD_IMAGES $LOAD_LAYERS"
		declare -f load_key load_images cmd_load
	} | sha256sum | cut -d' ' -f1
}

# load_images builds the load images with the running dockerd: build logs go to $1, deep_image's
# build context is made in $2.
load_images() {
	local build_log=$1 ctx=$2 t i have
	t=$SECONDS
	for i in $(seq -f %03g "$LOAD_IMAGES"); do
		# No build context: the Dockerfile comes on stdin and copies nothing.
		printf 'FROM sample_image\nLABEL dockerinit.load=%s\n' "$i" |
			"$DOCKER" build -t "load_image_$i" - >>"$build_log" 2>&1 || {
			tail -n 20 "$build_log" >&2
			die "docker build load_image_$i failed (log above)"
		}
	done
	log "load: docker build of $LOAD_IMAGES images FROM sample_image: $((SECONDS - t)) s"

	# COPY runs no container; Docker refuses more than 125 layers.
	t=$SECONDS
	have=$("$DOCKER" image inspect -f '{{len .RootFS.Layers}}' sample_image)
	[ "$have" -lt "$LOAD_LAYERS" ] || die "sample_image has $have layers already, want fewer than $LOAD_LAYERS"
	mkdir -p "$ctx"
	{
		echo "FROM sample_image"
		for i in $(seq $((have + 1)) "$LOAD_LAYERS"); do
			echo "layer $i of deep_image" >"$ctx/layer-$i"
			echo "COPY layer-$i /etc/dockerinit-load/layer-$i"
		done
	} >"$ctx/Dockerfile"
	"$DOCKER" build -t deep_image "$ctx" >>"$build_log" 2>&1 || {
		tail -n 20 "$build_log" >&2
		die "docker build deep_image failed (log above)"
	}
	i=$("$DOCKER" image inspect -f '{{len .RootFS.Layers}}' deep_image)
	[ "$i" = "$LOAD_LAYERS" ] || die "deep_image has $i layers, want $LOAD_LAYERS"
	log "load: docker build deep_image ($LOAD_LAYERS layers, $((LOAD_LAYERS - have)) COPY steps on sample_image): $((SECONDS - t)) s"
}

cmd_load() {
	local out=$1 base=$2 key start=$SECONDS run basefd
	[ -f "$base/disk.img" ] && [ -f "$base/fixture.stamp" ] ||
		die "$base: want a finished fixture (disk.img, fixture.stamp): run $0 $base DOCKERINIT first"
	[ "$base" != "$out" ] || die "load: OUTDIR must not be BASEDIR"
	key=$(load_key "$base")
	if [ -f "$out/disk.img" ] && [ "$(cat "$out/fixture.stamp" 2>/dev/null)" = "$key" ]; then
		log "load: reusing $out/disk.img (inputs unchanged)"
		return
	fi
	rm -f "$out/disk.img" "$out/disk.img.tmp" "$out/fixture.stamp" "$out/build.log"

	# BASEDIR is only read, holding its lock: test runs boot its disk.
	exec {basefd}<>"$base/.lock"
	if ! flock -n "$basefd"; then
		log "load: waiting for another user of $base (a test run or make demo)"
		flock "$basefd"
	fi
	cp --sparse=always "$base/disk.img" "$out/disk.img.tmp"
	exec {basefd}>&-
	log "load: copied $base/disk.img"

	mnt=$out/mnt
	mkdir -p "$mnt"
	mount -o loop "$out/disk.img.tmp" "$mnt"
	run=$(mktemp -d /tmp/dockerinit-fixture.XXXXXX)
	cleanup_paths+=("$run")
	start_dockerd "$mnt/docker" "$run" "$out/dockerd.log"
	load_images "$out/build.log" "$run/deep_image"
	log "load: $("$DOCKER" images -q | wc -l) images in the store"
	stop_dockerd

	# No store.list: the bench boots copies of this disk, and a listing of 100 layers, each a
	# whole root file system, is a quarter of a gigabyte.
	umount "$mnt"
	mnt=
	mv "$out/disk.img.tmp" "$out/disk.img"
	echo "$key" >"$out/fixture.stamp"
	log "load: made $out/disk.img in $((SECONDS - start)) s"
}

usage() { die "usage: $0 OUTDIR DOCKERINIT | list OUTDIR | mkboot OUTDIR IMAGE BOOTDIR MKBOOTIMG [ARGS...] | load OUTDIR BASEDIR"; }

sub=build
case ${1:-} in
list | mkboot | load) sub=$1 && shift ;;
"" | -*) usage ;;
esac
[ $# -ge 1 ] || usage
need_tools
mkdir -p "$1"
out=$(cd "$1" && pwd)
shift
lock "$out"
case $sub in
build)
	[ $# -eq 1 ] || usage
	cmd_build "$out" "$(realpath "$1")"
	;;
list) cmd_list "$out" ;;
mkboot)
	[ $# -ge 3 ] || usage
	cmd_mkboot "$out" "$@"
	;;
load)
	[ $# -eq 1 ] || usage
	[ -d "$1" ] || die "$1: no such fixture directory"
	cmd_load "$out" "$(cd "$1" && pwd)"
	;;
esac
