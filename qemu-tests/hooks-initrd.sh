#!/bin/bash
# hooks-initrd.sh: build an initramfs for the fixture's image with a Debian generator and our hook,
# as a user of that generator would, in a throwaway copy of the image's root file system.
#
#   hooks-initrd.sh GENERATOR LAYER DOCKERINIT REPO OUT
#
# GENERATOR is initramfs-tools or dracut; LAYER the image's top layer (read-only is fine);
# DOCKERINIT the static binary; REPO the checkout (its hooks/ are installed with `make
# install-hooks`). Writes OUT/initrd.img and OUT/kver. The copy with the generator installed by
# apt-get is cached in $DOCKERINIT_TEST_CACHE (default /var/cache/dockerinit-tests), keyed by
# the generator and the layer, so reruns need neither the mirror nor apt-get.
set -euo pipefail

gen=$1 layer=$2 dockerinit=$3 repo=$4 out=$5
cache=${DOCKERINIT_TEST_CACHE:-/var/cache/dockerinit-tests}
log() { printf 'hooks-initrd: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}
case $gen in initramfs-tools | dracut) ;; *) die "generator $gen: want initramfs-tools or dracut" ;; esac

root=$(mktemp -d "${TMPDIR:-/var/tmp}/dockerinit-hooks-$gen.XXXXXX")
mounts=()
cleanup() {
	local i
	for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[i]}" || true; done
	rm -rf --one-file-system "$root"
}
trap cleanup EXIT

# api mounts /proc, /sys, a /dev of its own (never the host's) and /run in the copy.
api() {
	mount -t proc proc "$root/proc" && mounts+=("$root/proc")
	mount -t sysfs sysfs "$root/sys" && mounts+=("$root/sys")
	mount -t tmpfs -o mode=0755,nosuid dev "$root/dev" && mounts+=("$root/dev")
	mount -t tmpfs -o mode=0755,nosuid,nodev run "$root/run" && mounts+=("$root/run")
	local n
	for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
		IFS=: read -r name major minor <<<"$n"
		mknod -m 0666 "$root/dev/$name" c "$major" "$minor"
	done
	ln -s /proc/self/fd "$root/dev/fd"
}
unapi() {
	local i
	for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[i]}"; done
	mounts=()
}
in_root() {
	env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C \
		DEBIAN_FRONTEND=noninteractive chroot "$root" "$@"
}

# dockerd names a layer's subvolume afresh whenever it makes it: the name is the layer's version.
tarball=$cache/hooks-$gen-$(basename "$layer").tar.zst
mkdir -p "$cache" "$out"
if [ -f "$tarball" ]; then
	log "reusing $tarball"
	tar --xattrs --xattrs-include='*' --numeric-owner -C "$root" -I zstd -xpf "$tarball"
else
	log "installing $gen into a copy of the image (cached as $tarball)"
	cp -a "$layer/." "$root/"
	api
	cp /etc/resolv.conf "$root/etc/resolv.conf.dockerinit" # the image has none of its own
	rm -f "$root/etc/resolv.conf"
	mv "$root/etc/resolv.conf.dockerinit" "$root/etc/resolv.conf"
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" # no service starts in here
	chmod 0755 "$root/usr/sbin/policy-rc.d"
	in_root apt-get update >&2
	in_root apt-get install -y --no-install-recommends "$gen" >&2
	in_root apt-get clean
	rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/resolv.conf"
	unapi
	tar --xattrs --xattrs-include='*' --numeric-owner -C "$root" -I 'zstd -T0 -3' -cf "$tarball.tmp" .
	rm -f "$cache/hooks-$gen-"*.tar.zst # of layers of earlier fixtures
	mv "$tarball.tmp" "$tarball"
fi

kver=$(ls "$root/lib/modules")
[ "$(wc -w <<<"$kver")" = 1 ] || die "the image has kernels '$kver' in /lib/modules: want exactly one"

# What a user does: install the binary and the hooks, write the configuration, build.
install -D -m 0755 "$dockerinit" "$root/usr/local/sbin/dockerinit"
make -s -C "$repo" install-hooks DESTDIR="$root" GENERATORS="$gen" >&2
# rwlayer: an overlay store's boot names it here, not in rootflags= (which the generator passes
# to mount root=); the btrfs boots' rootflags=subvol= wins over it.
cat >"$root/etc/dockerinit.toml" <<'EOF'
image = "sample_image"

[root]
rwlayer = "docker_rwlayer"
EOF
# As on a host whose / is ext4 in fstab: initramfs-tools then puts fsck.ext4 in, and checks root=.
if [ "$gen" = initramfs-tools ]; then
	echo FSTYPE=ext4 >"$root/etc/initramfs-tools/conf.d/fsck"
fi
api
rm -f "$root/boot/initrd.img-$kver"
case $gen in
initramfs-tools) in_root update-initramfs -c -k "$kver" >&2 ;;
# Host-only mode would describe the machine running the tests, not the guest.
dracut) in_root dracut --force --no-hostonly "/boot/initrd.img-$kver" "$kver" >&2 ;;
esac
unapi
cp "$root/boot/initrd.img-$kver" "$out/initrd.img"
echo "$kver" >"$out/kver"
log "$gen: $out/initrd.img ($(du -h "$out/initrd.img" | cut -f1)) for $kver"
