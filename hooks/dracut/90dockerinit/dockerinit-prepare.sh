#!/bin/sh
# dracut pre-mount hook of dockerinit (sourced by dracut once the root device is there): make the
# fresh rw layer; dracut then mounts root= (with rootflags=subvol=<rw layer> on a btrfs store) as
# usual, and dockerinit-mount-root.sh lays an overlay store's root over it. It does nothing
# unless the kernel command line has docker_path= or docker_image=.
type getarg >/dev/null 2>&1 || . /lib/dracut-lib.sh

if getarg docker_path= >/dev/null || getarg docker_image= >/dev/null; then
	modprobe -q btrfs
	modprobe -q overlay
	dockerinit prepare || die "dockerinit prepare failed (the reason is above): fix the kernel command line or /etc/dockerinit.toml"
fi
