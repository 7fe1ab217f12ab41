// Package hooks holds no Go code: it owns the shell integrations that run `dockerinit prepare`
// inside the initramfs images of mkinitcpio (mkinitcpio/), initramfs-tools (initramfs-tools/)
// and dracut (dracut/90dockerinit/), installed by `make install-hooks`. Its tests run those
// scripts against stubs of each generator's helper functions; the QEMU boots in qemu-tests boot
// initramfs images that initramfs-tools and dracut built with them.
package hooks
