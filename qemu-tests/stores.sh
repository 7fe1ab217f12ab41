#!/usr/bin/env bash
# stores.sh: one disk per "store cell", each image store written by its real tool, for the QEMU
# tests that boot from every kind of store dockerinit reads.
#
#   stores.sh CELL OUTDIR        make OUTDIR/disk.img for CELL (reused while its key is unchanged;
#                                restored from $DOCKERINIT_CACHE when another OUTDIR made it) and
#                                OUTDIR/store.list, the fingerprint of its store(s)
#   stores.sh list CELL OUTDIR   print the fingerprint of OUTDIR/disk.img's store(s), the disk mounted
#                                read-only without log replay: equal to store.list unless a boot wrote
#
# The cells (each disk a whole-disk file system labelled "linux", 4G sparse, no partition table):
#   docker-overlay2-ext4         bookworm's dockerd (docker.io), overlay2 graphdriver, /var/lib/docker
#   docker-overlay2-xfs          the same on xfs (ftype=1)
#   docker-containerd-btrfs      trixie's dockerd 26 (debootstrap tree, chroot), containerd image store
#                                (features.containerd-snapshotter), btrfs snapshotter, in trixie's system
#                                containerd (--containerd) whose root is /var/lib/containerd
#   docker-containerd-overlayfs  the same dockerd, overlayfs snapshotter, in the containerd dockerd
#                                starts itself: root /var/lib/docker/containerd/daemon; on ext4
#   podman-overlay               bookworm's podman, overlay driver, /var/lib/containers/storage; ext4;
#                                also two manifest lists made by podman (below)
#   podman-btrfs                 the same, btrfs driver, on btrfs
#   containerd-overlayfs         bookworm's containerd, `ctr -n moby images import`, overlayfs; ext4;
#                                also two multi-platform images made by bookworm's podman (below)
# Every store holds the same three images, loaded from one `docker save` tarball: debian-base (the
# tarball fixture.sh makes, docker import), sample_image (FROM debian-base + the test image's files,
# not the dockerinit binary: tests put that into the top layer) and other_image (FROM sample_image).
# Every disk also holds the top layer folder boot_docker/, made as fixture.sh makes it. The
# containerd cell also holds multi_image, an OCI index of other_image (linux/amd64) and a small
# linux/arm64 image, imported as containerd imports by default (the host's platform only), and
# arm_list, an index with only that linux/arm64 image (imported without unpacking, as it cannot be).
# The podman cells hold the same two as podman manifest lists, beside arm_only, the arm64 image.
#
# Needs root. Caches in $DOCKERINIT_CACHE (default /var/cache/dockerinit-tests): the images tarball,
# the trixie tree and a zstd copy of every finished disk, all keyed by what made them.
# Holds a lock on OUTDIR (a caller already holding it sets DOCKERINIT_FIXTURE_LOCKED=1) and, while
# making a shared cache entry, on $CACHE/.stores-<kind>.lock (not fixture.sh's .lock: a trixie
# debootstrap must not stall the main fixture).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self=$here/$(basename "${BASH_SOURCE[0]}")
DISK_SIZE=4G
CACHE=${DOCKERINIT_CACHE:-/var/cache/dockerinit-tests}
DOCKER=/usr/bin/docker # docker.io's client: /usr/local/bin/docker may be an unrelated one
DOCKERD=/usr/sbin/dockerd
CONTAINERD=/usr/bin/containerd
CTR=/usr/bin/ctr
PODMAN=/usr/bin/podman
TRIXIE_PACKAGES=docker.io,docker-cli,containerd # trixie splits the client off docker.io
CELLS="docker-overlay2-ext4 docker-overlay2-xfs docker-containerd-btrfs docker-containerd-overlayfs
podman-overlay podman-btrfs containerd-overlayfs"
# The store roots a cell may have, relative to the disk's top.
STORE_ROOTS="var/lib/docker var/lib/containerd var/lib/containers/storage"

log() { printf 'stores: %s\n' "$*" >&2; }
# shellcheck source=lib.sh
. "$here/lib.sh"

# cell_fs prints the file system of CELL's disk.
cell_fs() {
	case $1 in
	docker-overlay2-xfs) echo xfs ;;
	docker-containerd-btrfs | podman-btrfs) echo btrfs ;;
	*) echo ext4 ;;
	esac
}

# need_tools fails naming every missing Debian package at once: those of CELL, or for list only
# the mount tools.
need_tools() {
	local sub=$1 cell=$2 pairs
	[ "$(id -u)" = 0 ] || die "must run as root (loop mounts, dockerd, podman, containerd, debootstrap)"
	pairs="flock:util-linux losetup:mount mount:mount"
	if [ "$sub" = build ]; then
		pairs+=" zstd:zstd setfattr:attr $DOCKERD:docker.io $DOCKER:docker.io"
		case $(cell_fs "$cell") in
		ext4) pairs+=" mkfs.ext4:e2fsprogs" ;;
		xfs) pairs+=" mkfs.xfs:xfsprogs" ;;
		btrfs) pairs+=" mkfs.btrfs:btrfs-progs btrfs:btrfs-progs" ;;
		esac
		case $cell in
		docker-containerd-*) pairs+=" debootstrap:debootstrap" ;;
		podman-*) pairs+=" $PODMAN:podman" ;;
		containerd-*) pairs+=" $CONTAINERD:containerd $CTR:containerd" ;;
		esac
	fi
	# shellcheck disable=SC2086 # one word a pair
	need_packages $pairs
}


# cache_lock takes the lock on one kind of this script's shared cache entries, $CACHE/.stores-$1.lock
# (a trixie debootstrap must not hold up the images or a disk copy); cache_unlock drops it. One at a
# time: a second flock of the same file in this process would wait for itself.
cache_lock() {
	mkdir -p "$CACHE"
	exec {cachefd}>"$CACHE/.stores-$1.lock"
	if ! flock -n "$cachefd"; then
		log "waiting for another stores.sh making a $1 cache entry in $CACHE"
		flock "$cachefd"
	fi
}
cache_unlock() { exec {cachefd}>&-; }



# list_stores prints the fingerprint of the stores under the disk's top $1: every path of every
# store root there is, with type, mode, owner, size, mtime and link target (as fixture.sh's
# list_store), then the sha256 of every metadata file: the bbolt databases (*.db: containerd's
# meta.db and snapshotter metadata.db, podman's bolt_state.db, Docker's own), the JSON files,
# Docker's image/ tree (imagedb, layerdb), containers/storage's *-images/ and *-layers/ (images.json,
# layers.json, big data, tar-split) and containerd's content blobs of at most 1 MiB (indexes,
# manifests, configs). Layer contents and layer tarballs are covered by the listing, not hashed:
# that stays fast (a second or two).
list_stores() {
	local top=$1 roots=() r
	for r in $STORE_ROOTS; do
		[ -d "$top/$r" ] && roots+=("$r")
	done
	[ ${#roots[@]} -gt 0 ] || die "no store root ($STORE_ROOTS) on $top"
	(
		cd "$top"
		find "${roots[@]}" -printf '%p %y %#m %U:%G %s %T@ %l\n' | LC_ALL=C sort
		find "${roots[@]}" -type f \( -name '*.db' -o -name '*.json' -o -path 'var/lib/docker/image/*' \
			-o -path 'var/lib/containers/storage/*-images/*' -o -path 'var/lib/containers/storage/*-layers/*' \
			-o \( -path '*/io.containerd.content.v1.content/blobs/*' -size -1025k \) \) \
			-print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
	)
}

# --- The images tarball: one `docker save` of debian-base, sample_image and other_image ---

# image_context writes the build context of IMAGE ($1) into $2: its Dockerfile and files. The init
# scripts get mode 0755 whatever mode the checkout gave them.
image_context() {
	local image=$1 ctx=$2
	mkdir -p "$ctx"
	cp "$here/images/$image/dockerinit-test-image" "$ctx/"
	case $image in
	sample_image)
		install -m 0755 "$here/images/sample_image/testinit" "$here/images/sample_image/demoinit" "$ctx/"
		printf '%s\n' 'FROM debian-base' \
			'COPY dockerinit-test-image /etc/dockerinit-test-image' \
			'COPY testinit demoinit /usr/local/sbin/' >"$ctx/Dockerfile"
		;;
	other_image)
		printf '%s\n' 'FROM sample_image' \
			'COPY dockerinit-test-image /etc/dockerinit-test-image' >"$ctx/Dockerfile"
		;;
	esac
}

# base_tarball sets base to the newest debian-base tarball fixture.sh made.
base_tarball() {
	base=$(ls -t "$CACHE"/debian-bookworm-*.tar.zst 2>/dev/null | head -n1 || true)
	[ -n "$base" ] || die "no $CACHE/debian-bookworm-*.tar.zst (fixture.sh's debian-base): run the main fixture first (make qemu-fixture, or any QEMU test)"
}

# images_tarball sets images to the cached images tarball (uncompressed: podman load and ctr import
# read a file), making it if needed, and images_key to its key.
images_tarball() {
	local work start=$SECONDS t run image f
	base_tarball
	images_key=$({
		basename "$base" # fixture.sh's key is in its name
		"$DOCKERD" --version
		declare -f image_context
		for image in sample_image other_image; do
			for f in "$here/images/$image"/dockerinit-test-image "$here/images/$image"/*init; do
				if [ -f "$f" ]; then echo "$image/${f##*/}" && cat "$f"; fi
			done
		done
	} | sha256sum | cut -c1-16)
	images=$CACHE/store-images-$images_key.tar
	cache_lock images
	if [ -f "$images" ]; then
		log "images: cached $images"
		cache_unlock
		return
	fi
	work=$(mktemp -d "$CACHE/work.XXXXXX")
	cleanup_paths+=("$work")
	# A short directory: unix socket paths are limited to 107 bytes.
	run=$(mktemp -d /tmp/dockerinit-stores.XXXXXX)
	cleanup_paths+=("$run")
	log "images: building sample_image and other_image on $(basename "$base") with $("$DOCKERD" --version)"
	t=$SECONDS
	start_dockerd "$work/docker" "$run" "$work/dockerd.log" --storage-driver overlay2
	log "images: dockerd up in $((SECONDS - t)) s"
	t=$SECONDS
	zstd -dc "$base" | "$DOCKER" import - debian-base >/dev/null
	log "images: docker import debian-base: $((SECONDS - t)) s"
	for image in sample_image other_image; do
		t=$SECONDS
		image_context "$image" "$run/$image"
		"$DOCKER" build -t "$image" "$run/$image" >>"$work/build.log" 2>&1 || {
			tail -n 20 "$work/build.log" >&2
			die "docker build $image failed (log above)"
		}
		log "images: docker build $image: $((SECONDS - t)) s"
	done
	t=$SECONDS
	"$DOCKER" save -o "$work/images.tar" sample_image other_image debian-base
	log "images: docker save: $((SECONDS - t)) s"
	stop_dockerd
	mv "$work/images.tar" "$images"
	log "images: made $images ($(du -h "$images" | cut -f1)) in $((SECONDS - start)) s"
	cache_unlock
}

# --- The trixie tree for dockerd 26 with the containerd image store ---

# prep_trixie trims the debootstrap tree: no apt caches, no resolv.conf, no system containerd socket.
prep_trixie() {
	local r=$1
	rm -f "$r/etc/resolv.conf"
	find "$r/var/cache/apt/archives" "$r/var/lib/apt/lists" -type f -delete
	rm -rf "$r/run/containerd" "$r/var/lib/docker" "$r/var/lib/containerd"
}

# trixie_tarball sets trixie to the cached trixie tree tarball, making it if needed.
trixie_tarball() {
	local key work start=$SECONDS mirror
	key=$({
		echo "trixie $TRIXIE_PACKAGES"
		declare -f prep_trixie
	} | sha256sum | cut -c1-16)
	trixie=$CACHE/trixie-docker-$key.tar.zst
	cache_lock trixie
	if [ -f "$trixie" ] && [ -f "${trixie%.tar.zst}.versions" ]; then
		log "trixie: cached $trixie ($(tr '\n' ' ' <"${trixie%.tar.zst}.versions"))"
		cache_unlock
		return
	fi
	work=$(mktemp -d "$CACHE/work.XXXXXX")
	cleanup_paths+=("$work")
	mirror=$(mirror)
	log "trixie: debootstrap trixie from $mirror with $TRIXIE_PACKAGES (a few minutes, once)"
	debootstrap --variant=minbase --include="$TRIXIE_PACKAGES" trixie "$work/root" "$mirror" \
		>"$work/debootstrap.log" 2>&1 || {
		tail -n 30 "$work/debootstrap.log" >&2
		die "debootstrap trixie failed (log above)"
	}
	prep_trixie "$work/root"
	chroot "$work/root" dpkg-query -W -f '${Package} ${Version}\n' docker.io docker-cli containerd runc \
		>"$work/versions" 2>/dev/null || true
	mv "$work/versions" "${trixie%.tar.zst}.versions"
	tar --numeric-owner -C "$work/root" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
		-c . | zstd -q -T0 -o "$work/root.tar.zst"
	mv "$work/root.tar.zst" "$trixie"
	log "trixie: built $trixie in $((SECONDS - start)) s"
	cache_unlock
}

# chroot_up unpacks the trixie tree into $1 and mounts what dockerd and containerd need in it, with
# the disk's mount at /disk and the images tarball's folder at /images (read-only).
chroot_up() {
	local r=$1
	mkdir -p "$r"
	zstd -dc "$trixie" | tar --numeric-owner -C "$r" -x
	mkdir -p "$r/disk" "$r/images" "$r/proc" "$r/sys" "$r/dev" "$r/run"
	chroot_mounts+=("$r/proc") && mount -t proc proc "$r/proc"
	chroot_mounts+=("$r/sys") && mount -t sysfs sysfs "$r/sys"
	# dockerd refuses to start without the cgroup controllers ("Devices cgroup isn't mounted"):
	# the host's, as a slave copy so that unmounting it here never unmounts the host's.
	mount --rbind /sys/fs/cgroup "$r/sys/fs/cgroup"
	mount --make-rslave "$r/sys/fs/cgroup"
	chroot_mounts+=("$r/dev") && mount --bind /dev "$r/dev"
	chroot_mounts+=("$r/dev/pts") && mount -t devpts -o newinstance,ptmxmode=0666 devpts "$r/dev/pts"
	chroot_mounts+=("$r/run") && mount -t tmpfs -o mode=0755 tmpfs "$r/run"
	chroot_mounts+=("$r/disk") && mount --bind "$mnt" "$r/disk"
	chroot_mounts+=("$r/images") && mount --bind "$(dirname "$images")" "$r/images"
	mount -o remount,bind,ro "$r/images"
	# dockerd finds its system containerd by this socket: none unless this script starts one.
	[ ! -e "$r/run/containerd/containerd.sock" ] || die "$r/run/containerd/containerd.sock exists in a fresh /run"
}

# chroot_down unmounts everything under the tree, deepest first (what dockerd and containerd
# mounted under /disk or /run included).
chroot_down() {
	local r=$1 m p
	# A daemon of this script's still running in the tree (after a failure) would keep it busy.
	for p in $(find /proc -maxdepth 2 -name root -lname "$r" 2>/dev/null | cut -d/ -f3); do
		log "stopping pid $p, still running in $r: $(tr '\0' ' ' </proc/"$p"/cmdline 2>/dev/null || true)"
		stop_pid "pid $p" "$p"
	done
	awk -v p="$r/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
		umount "$m" || umount -l "$m" || log "could not unmount $m"
	done
	chroot_mounts=()
}

# --- Daemons ---

# start_dockerd starts the host's dockerd on data root $1 with its socket and state in $2 and its
# log in $3, ignoring the host's daemon.json; further arguments go to dockerd.
start_dockerd() {
	local data_root=$1 run=$2 log_file=$3
	shift 3
	echo '{}' >"$run/daemon.json" # ignore the host's /etc/docker/daemon.json
	export DOCKER_HOST=unix://$run/docker.sock DOCKER_CONFIG=$run/client DOCKER_BUILDKIT=0
	"$DOCKERD" --config-file "$run/daemon.json" --data-root "$data_root" "$@" \
		-H "$DOCKER_HOST" --exec-root "$run/exec" --pidfile "$run/docker.pid" \
		--bridge=none --iptables=false --ip-masq=false >"$log_file" 2>&1 &
	dockerd_pid=$!
	wait_up dockerd "$log_file" "$DOCKER" version
}

# wait_up waits until COMMAND... succeeds, while daemon NAME (containerd: $containerd_pid, dockerd:
# $dockerd_pid) lives; LOG is its log, tailed if it does not come up.
# usage: wait_up NAME LOG COMMAND...
wait_up() {
	local name=$1 log_file=$2 pid
	shift 2
	case $name in
	containerd) pid=$containerd_pid ;;
	*) pid=$dockerd_pid ;;
	esac
	for _ in $(seq 120); do
		"$@" >/dev/null 2>&1 && return
		kill -0 "$pid" 2>/dev/null || {
			tail -n 20 "$log_file" >&2
			die "$name exited while starting (log above, whole log in $log_file)"
		}
		sleep 0.5
	done
	tail -n 20 "$log_file" >&2
	die "$name did not answer within 60 s (log above, whole log in $log_file)"
}

# stop_pid stops daemon NAME, process PID: SIGTERM, then SIGKILL after 30 s.
stop_pid() {
	local name=$1 pid=$2
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 60); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "$name did not stop within 30 s of SIGTERM: killing it"
		kill -KILL "$pid"
	fi
	wait "$pid" 2>/dev/null || true
}

stop_dockerd() {
	local pid=$dockerd_pid
	dockerd_pid=
	[ -z "$pid" ] || stop_pid dockerd "$pid"
}

stop_containerd() {
	local pid=$containerd_pid
	containerd_pid=
	[ -z "$pid" ] || stop_pid containerd "$pid"
}

# containerd_config writes a containerd config to $1: root $2, state $3, socket $4, and no CRI
# plugin (it needs a CNI set-up and has nothing to do here). Every snapshotter stays registered.
containerd_config() {
	printf '%s\n' 'version = 2' "root = \"$2\"" "state = \"$3\"" \
		'disabled_plugins = ["io.containerd.grpc.v1.cri"]' '[grpc]' "  address = \"$4\"" >"$1"
}

# --- The cells ---

# logged WHAT CMD...: runs CMD, its output appended to $out/tool.log; on failure shows the log's
# end and stops, saying WHAT failed.
logged() {
	local what=$1
	shift
	"$@" >>"$out/tool.log" 2>&1 || {
		tail -n 20 "$out/tool.log" >&2
		die "$what failed (log above)"
	}
}

# cell_docker_overlay2 loads the images with the host's dockerd, overlay2 graphdriver.
cell_docker_overlay2() {
	local t=$SECONDS
	start_dockerd "$mnt/var/lib/docker" "$run" "$out/tool.log" --storage-driver overlay2
	log "dockerd ($("$DOCKERD" --version)) up in $((SECONDS - t)) s"
	t=$SECONDS
	logged "docker load" "$DOCKER" load -i "$images"
	log "docker load: $((SECONDS - t)) s"
	"$DOCKER" images >&2
	"$DOCKER" info 2>/dev/null | grep -E 'Storage Driver|Backing|Supports d_type' >&2 || true
	stop_dockerd
}

# in_chroot runs a command in the trixie tree.
in_chroot() { chroot "$root" "$@"; }

# cell_docker_containerd loads the images with trixie's dockerd and the containerd image store,
# snapshotter $1; with $2 = system, in trixie's containerd started here at /var/lib/containerd.
cell_docker_containerd() {
	local snapshotter=$1 which=$2 t=$SECONDS args=()
	root=$run/root
	chroot_up "$root"
	log "trixie tree unpacked and mounted in $((SECONDS - t)) s"
	mkdir -p "$root/run/docker" "$mnt/var/lib/docker"
	echo '{"features": {"containerd-snapshotter": true}}' >"$root/run/docker/daemon.json"
	if [ "$which" = system ]; then
		t=$SECONDS
		mkdir -p "$mnt/var/lib/containerd" "$root/run/containerd"
		containerd_config "$root/run/containerd/config.toml" /disk/var/lib/containerd /run/containerd \
			/run/containerd/containerd.sock
		chroot "$root" containerd --config /run/containerd/config.toml >"$out/containerd.log" 2>&1 &
		containerd_pid=$!
		wait_up containerd "$out/containerd.log" in_chroot ctr -a /run/containerd/containerd.sock version
		log "containerd ($(in_chroot containerd --version)) up in $((SECONDS - t)) s"
		args+=(--containerd=/run/containerd/containerd.sock)
	fi
	t=$SECONDS
	chroot "$root" /usr/sbin/dockerd --config-file /run/docker/daemon.json --data-root /disk/var/lib/docker \
		--storage-driver "$snapshotter" "${args[@]}" -H unix:///run/docker.sock --exec-root /run/docker/exec \
		--pidfile /run/docker/docker.pid --bridge=none --iptables=false --ip-masq=false >"$out/tool.log" 2>&1 &
	dockerd_pid=$!
	local docker=(in_chroot docker -H unix:///run/docker.sock)
	wait_up dockerd "$out/tool.log" "${docker[@]}" version
	log "dockerd ($(in_chroot /usr/sbin/dockerd --version)) up in $((SECONDS - t)) s"
	t=$SECONDS
	logged "docker load" "${docker[@]}" load -i "/images/$(basename "$images")"
	log "docker load: $((SECONDS - t)) s"
	"${docker[@]}" images >&2
	"${docker[@]}" info 2>/dev/null | grep -E 'Storage Driver|driver-type|containerd' >&2 || true
	stop_dockerd
	stop_containerd
	chroot_down "$root"
}

# cell_podman loads the images with bookworm's podman, storage driver $1, ignoring the host's
# containers configuration.
cell_podman() {
	local driver=$1 t=$SECONDS
	mkdir -p "$mnt/var/lib/containers/storage" "$run/runroot" "$run/tmp" "$run/libpod"
	printf '%s\n' '[storage]' "driver = \"$driver\"" "runroot = \"$run/runroot\"" \
		"graphroot = \"$mnt/var/lib/containers/storage\"" '[storage.options.overlay]' 'mount_program = ""' \
		>"$run/storage.conf"
	: >"$run/containers.conf"
	podman_cmd() {
		CONTAINERS_STORAGE_CONF=$run/storage.conf CONTAINERS_CONF=$run/containers.conf TMPDIR=$run/tmp \
			"$PODMAN" --root "$mnt/var/lib/containers/storage" --runroot "$run/runroot" --tmpdir "$run/libpod" \
			--storage-driver "$driver" --cgroup-manager cgroupfs --events-backend none "$@"
	}
	pm() { logged "podman $1" podman_cmd "$@"; }
	pm load -i "$images"
	log "podman load ($("$PODMAN" --version), $driver): $((SECONDS - t)) s"
	t=$SECONDS
	manifest_lists "$run" "containers-storage:$(podman_cmd image inspect --format '{{.Id}}' other_image)"
	log "podman manifest lists: $((SECONDS - t)) s"
	podman_cmd images >&2
}

# cell_containerd imports the images with bookworm's containerd into namespace moby, overlayfs.
cell_containerd() {
	local t=$SECONDS sock=$run/containerd.sock
	mkdir -p "$mnt/var/lib/containerd"
	containerd_config "$run/containerd.toml" "$mnt/var/lib/containerd" "$run/state" "$sock"
	"$CONTAINERD" --config "$run/containerd.toml" >"$out/containerd.log" 2>&1 &
	containerd_pid=$!
	wait_up containerd "$out/containerd.log" "$CTR" -a "$sock" version
	log "containerd ($("$CONTAINERD" --version)) up in $((SECONDS - t)) s"
	t=$SECONDS
	logged "ctr images import" "$CTR" -a "$sock" -n moby images import --snapshotter overlayfs "$images"
	log "ctr import: $((SECONDS - t)) s"
	multiplatform_archives "$run/mp"
	logged "ctr images import of multi_image" "$CTR" -a "$sock" -n moby images import --snapshotter overlayfs \
		--base-name docker.io/library/multi_image "$run/mp/multi.tar"
	logged "ctr images import of arm_list" "$CTR" -a "$sock" -n moby images import --no-unpack \
		--base-name docker.io/library/arm_list "$run/mp/arm.tar"
	"$CTR" -a "$sock" -n moby images ls >&2
	local n
	n=$("$CTR" -a "$sock" -n moby snapshots --snapshotter overlayfs ls | tail -n +2 | grep -c Committed || true)
	# One a layer: debian-base's, sample_image's two COPYs, other_image's COPY; multi_image's
	# linux/amd64 image is other_image, its layers the same snapshots.
	[ "$n" = 4 ] || die "ctr import left $n committed overlayfs snapshots, want 4 (the images unpacked)"
	log "ctr: $n committed overlayfs snapshots"
	stop_containerd
}

# manifest_lists makes, with pm (a function running podman on some store), the image arm_only (one
# file, linux/arm64, built FROM scratch: no emulator needed) and two manifest lists as podman
# makes them: multi_image, of the image $2 (a transport reference, other_image) for linux/amd64
# and arm_only, and arm_list, of arm_only alone. $1 is a scratch folder.
manifest_lists() {
	local dir=$1 amd64=$2
	mkdir -p "$dir/ctx"
	echo "an arm64 image" >"$dir/ctx/hello"
	printf '%s\n' 'FROM scratch' 'COPY hello /hello' >"$dir/ctx/Containerfile"
	pm build --platform linux/arm64 -t arm_only "$dir/ctx"
	pm manifest create multi_image
	pm manifest add multi_image "$amd64"
	pm manifest add multi_image containers-storage:localhost/arm_only
	pm manifest create arm_list
	pm manifest add arm_list containers-storage:localhost/arm_only
}

# multiplatform_archives writes, with podman in a throwaway store, $1/multi.tar and $1/arm.tar:
# OCI archives of manifest_lists' multi_image (other_image from the images tarball) and arm_list.
multiplatform_archives() {
	local dir=$1 t=$SECONDS
	mkdir -p "$dir/tmp"
	: >"$dir/containers.conf"
	pm() {
		logged "podman $1" env CONTAINERS_CONF="$dir/containers.conf" TMPDIR="$dir/tmp" "$PODMAN" --root "$dir/root" \
			--runroot "$dir/runroot" --storage-driver vfs --cgroup-manager cgroupfs --events-backend none "$@"
	}
	manifest_lists "$dir" "docker-archive:$images:other_image:latest"
	pm manifest push --all --format oci multi_image "oci-archive:$dir/multi.tar:latest"
	pm manifest push --all --format oci arm_list "oci-archive:$dir/arm.tar:latest"
	log "podman ($("$PODMAN" --version)): multi-platform archives in $((SECONDS - t)) s"
}

# tool_versions prints the versions of the tools CELL's store is written by.
tool_versions() {
	case $1 in
	docker-overlay2-*) "$DOCKERD" --version ;;
	docker-containerd-*) cat "${trixie%.tar.zst}.versions" ;; # what debootstrap got, noted when it ran
	podman-*) "$PODMAN" --version ;;
	containerd-*) "$CONTAINERD" --version && "$CTR" --version && "$PODMAN" --version ;;
	esac
}

cell_key() {
	local cell=$1
	{
		cat "$self" "$here/lib.sh"
		echo "$cell $images_key"
		tool_versions "$cell"
	} | sha256sum | cut -d' ' -f1
}

cmd_build() {
	local cell=$1 out=$2 key start=$SECONDS t fs cached
	[ "$out" != / ] || die "OUTDIR must not be /"
	images_tarball
	case $cell in docker-containerd-*) trixie_tarball ;; esac
	key=$(cell_key "$cell")
	if [ -f "$out/disk.img" ] && [ -f "$out/store.list" ] && [ "$(cat "$out/fixture.stamp" 2>/dev/null)" = "$key" ]; then
		log "$cell: reusing $out/disk.img (inputs unchanged)"
		return
	fi
	rm -f "$out/disk.img" "$out/disk.img.tmp" "$out/store.list" "$out/fixture.stamp" "$out/tool.log" "$out/containerd.log"
	cached=$CACHE/store-$cell-$key
	if [ -f "$cached.img.zst" ] && [ -f "$cached.list" ]; then
		zstd -q -d --sparse -f "$cached.img.zst" -o "$out/disk.img.tmp"
		cp "$cached.list" "$out/store.list"
		mv "$out/disk.img.tmp" "$out/disk.img"
		echo "$key" >"$out/fixture.stamp"
		log "$cell: restored $out/disk.img from $cached.img.zst in $((SECONDS - start)) s"
		return
	fi

	fs=$(cell_fs "$cell")
	truncate -s "$DISK_SIZE" "$out/disk.img.tmp"
	case $fs in
	ext4) mkfs.ext4 -q -F -L linux "$out/disk.img.tmp" ;;
	xfs) mkfs.xfs -q -f -L linux "$out/disk.img.tmp" ;;
	btrfs) mkfs.btrfs -q -f -L linux "$out/disk.img.tmp" >/dev/null ;;
	esac
	mnt=$out/mnt
	mkdir -p "$mnt"
	mount -o loop "$out/disk.img.tmp" "$mnt"
	# A short directory: unix socket paths are limited to 107 bytes.
	run=$(mktemp -d /tmp/dockerinit-stores.XXXXXX)
	cleanup_paths+=("$run")
	log "$cell: writing the store on $fs"
	t=$SECONDS
	case $cell in
	docker-overlay2-*) cell_docker_overlay2 ;;
	docker-containerd-btrfs) cell_docker_containerd btrfs system ;;
	docker-containerd-overlayfs) cell_docker_containerd overlayfs own ;;
	podman-overlay) cell_podman overlay ;;
	podman-btrfs) cell_podman btrfs ;;
	containerd-overlayfs) cell_containerd ;;
	esac
	log "$cell: store written in $((SECONDS - t)) s"
	no_leftovers

	make_toplayer "$mnt/boot_docker"
	list_stores "$mnt" >"$out/store.list"
	df -h "$mnt" | tail -n 1 | awk '{print "stores: '"$cell"': " $3 " used on the disk"}' >&2
	umount "$mnt"
	mnt=
	mv "$out/disk.img.tmp" "$out/disk.img"
	echo "$key" >"$out/fixture.stamp"
	log "$cell: made $out/disk.img in $((SECONDS - start)) s"

	# The cache copy, for a fresh OUTDIR (a new checkout, a temp folder) to restore in seconds.
	t=$SECONDS
	cache_lock "$cell"
	zstd -q -T0 -f "$out/disk.img" -o "$cached.img.zst.tmp"
	cp "$out/store.list" "$cached.list.tmp"
	mv "$cached.list.tmp" "$cached.list"
	mv "$cached.img.zst.tmp" "$cached.img.zst"
	# Older keys of this cell are stale: the script, the images or a tool changed.
	find "$CACHE" -maxdepth 1 -name "store-$cell-*" ! -name "store-$cell-$key.*" -delete
	cache_unlock
	log "$cell: cached as $cached.img.zst ($(du -h "$cached.img.zst" | cut -f1)) in $((SECONDS - t)) s"
}

# no_leftovers unmounts what the tools left mounted under the disk's mount (podman's and containerd's
# overlay mounts, a private bind of storage/overlay) and fails if one of them still runs.
no_leftovers() {
	local m p
	awk -v p="$mnt/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
		log "unmounting $m, left mounted by the tool"
		umount "$m" || die "could not unmount $m"
	done
	# By command line (the host's tools), or by root directory (the trixie tree's).
	for p in $(pgrep -f "$mnt|$run" || true) $(find /proc -maxdepth 2 -name root -lname "$run/*" 2>/dev/null | cut -d/ -f3); do
		[ "$p" = $$ ] || [ "$p" = "$BASHPID" ] && continue
		[ -d "/proc/$p" ] || continue
		log "still running: $(tr '\0' ' ' </proc/"$p"/cmdline 2>/dev/null || true)"
		die "a daemon or tool (pid $p) outlived its session on $mnt"
	done
}

# mount_ro mounts OUTDIR's disk read-only without log replay, so nothing at all is written to it.
mount_ro() {
	local cell=$1 out=$2 opts
	[ -f "$out/disk.img" ] || die "$out/disk.img does not exist: run $0 $cell $out first"
	case $(cell_fs "$cell") in
	ext4) opts=ro,noload ;;
	xfs) opts=ro,norecovery ;;
	btrfs) opts=ro,rescue=nologreplay ;;
	esac
	mnt=$out/mnt
	mkdir -p "$mnt"
	mount -o "loop,$opts" "$out/disk.img" "$mnt"
}

cmd_list() {
	mount_ro "$1" "$2"
	list_stores "$mnt"
}

cleanup_paths=()
chroot_mounts=()
mnt=
run=
root=
dockerd_pid=
containerd_pid=
cleanup() {
	local rc=$?
	stop_dockerd
	stop_containerd
	[ -z "$root" ] || chroot_down "$root"
	local p m
	if [ -n "$mnt" ]; then
		awk -v p="$mnt/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
			umount "$m" || umount -l "$m" || true
		done
		if mountpoint -q "$mnt"; then
			umount "$mnt" || log "could not unmount $mnt: unmount it by hand before using the disk"
		fi
	fi
	for p in "${cleanup_paths[@]}"; do
		# A failed debootstrap can leave proc/sys mounted inside its tree.
		awk -v p="$p/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
			umount "$m" || umount -l "$m" || true
		done
		rm -rf "$p"
	done
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

usage() { die "usage: $0 CELL OUTDIR | list CELL OUTDIR; CELL is one of: $(echo $CELLS)"; }

sub=build
case ${1:-} in
list) sub=$1 && shift ;;
"" | -*) usage ;;
esac
[ $# -eq 2 ] || usage
cell=$1
[[ " $(echo $CELLS) " = *" $cell "* ]] || usage
need_tools "$sub" "$cell"
mkdir -p "$2"
out=$(cd "$2" && pwd)
lock "$out"
case $sub in
build) cmd_build "$cell" "$out" ;;
list) cmd_list "$cell" "$out" ;;
esac
