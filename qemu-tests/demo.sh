#!/usr/bin/env bash
# demo.sh OUTDIR: boot sample_image from the fixture disk in QEMU on this terminal.
# `make demo` runs it after `make deps` and `make build`. By default systemd boots to a
# login prompt (root, no password; Ctrl-a x quits QEMU); DEMO_POWEROFF=1 boots demoinit
# instead, which shows what booted and powers off. DOCKERINIT_KVM=1 uses KVM instead of TCG.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
die() {
	printf 'demo: error: %s\n' "$*" >&2
	exit 1
}

[ $# -eq 1 ] || die "usage: $0 OUTDIR"
command -v qemu-system-x86_64 >/dev/null ||
	die "qemu-system-x86_64 not found: make deps installs it with the rest (make demo runs make deps first)"
[ -x "$repo/bin/mkbootimg" ] || die "$repo/bin/mkbootimg is missing: run make build first"
mkdir -p "$1"
out=$(cd "$1" && pwd)
fixture=${DOCKERINIT_FIXTURE_DIR:-$repo/out/fixture}
mkdir -p "$fixture"

# Held until QEMU exits (it inherits the descriptor): the boot writes to the disk.
exec {lockfd}>"$fixture/.lock"
flock -n "$lockfd" || {
	echo "demo: waiting for another user of $fixture (a test run?)" >&2
	flock "$lockfd"
}
export DOCKERINIT_FIXTURE_LOCKED=1
bash "$here/fixture.sh" "$fixture" "$repo/bin/dockerinit"
bash "$here/fixture.sh" mkboot "$fixture" sample_image "$out/boot" "$repo/bin/mkbootimg"

cmdline="console=ttyS0 root=LABEL=linux rootflags=subvol=docker_rwlayer rw docker_path=docker toplayer=LABEL=linux toplayer_path=boot_docker no_timer_check"
if [ "${DEMO_POWEROFF:-}" = 1 ]; then
	cmdline+=" init=/usr/local/sbin/demoinit"
else
	echo "demo: booting sample_image with systemd; log in as root (no password), Ctrl-a x quits QEMU" >&2
fi
accel=(-accel tcg)
[ "${DOCKERINIT_KVM:-}" = 1 ] && accel=(-accel kvm -cpu host)
exec qemu-system-x86_64 -machine q35 -m 1024 -smp 2 -nographic -no-reboot -nic none "${accel[@]}" \
	-drive "file=$fixture/disk.img,if=virtio,format=raw,cache=unsafe" \
	-kernel "$out/boot/vmlinuz" -initrd "$out/boot/initramfs.img" -append "$cmdline"
