#!/bin/bash
# dracut module of dockerinit: the static dockerinit binary, the btrfs module, dockerinit's
# configuration, a pre-mount hook that runs `dockerinit prepare` and a pre-pivot hook that lays an
# overlay store's image root over the mounted root= (`dockerinit mount-root`). Installed as
# /usr/lib/dracut/modules.d/90dockerinit/.
# shellcheck disable=SC2154 # moddir is dracut's

# dockerinit_bin prints where dockerinit is installed: dracut's own binary search leaves out
# /usr/local, where `make install-hooks` tells to put it.
dockerinit_bin() {
    local d
    for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
        if [[ -x ${dracutsysrootdir-}$d/dockerinit ]]; then
            echo "$d/dockerinit"
            return 0
        fi
    done
    return 1
}

# Included whenever the binary is installed: that is the only reason to install this module.
check() {
    if ! dockerinit_bin >/dev/null; then
        derror "dockerinit: no dockerinit binary in /usr/local/sbin, /usr/sbin or /sbin: install it, or remove $moddir"
        return 1
    fi
    return 0
}

depends() {
    return 0
}

installkernel() {
    instmods btrfs overlay
}

install() {
    inst "$(dockerinit_bin)" /usr/sbin/dockerinit
    local f
    for f in /etc/dockerinit.toml /etc/docker-btrfs.json; do
        [[ -e ${dracutsysrootdir-}$f ]] && inst_simple "$f"
    done
    inst_hook pre-mount 50 "$moddir/dockerinit-prepare.sh"
    inst_hook pre-pivot 50 "$moddir/dockerinit-mount-root.sh"
}
