#!/bin/sh
# dracut pre-pivot hook of dockerinit (sourced by dracut once root= is mounted on $NEWROOT): an
# overlay store's image root, made by dockerinit-prepare.sh, is laid over $NEWROOT. After a btrfs
# store's prepare there is nothing to do. It does nothing unless the kernel command line has
# docker_path= or docker_image=.
type getarg >/dev/null 2>&1 || . /lib/dracut-lib.sh

if getarg docker_path= >/dev/null || getarg docker_image= >/dev/null; then
	dockerinit mount-root "$NEWROOT" || die "dockerinit mount-root failed (the reason is above)"
fi
