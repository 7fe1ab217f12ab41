// Package qemutests owns the end-to-end proof that dockerinit works: real boots
// under QEMU of Docker images built by a real dockerd on a btrfs disk.
//
// The tests build bin/dockerinit and bin/mkbootimg, make the disk with
// fixture.sh (debootstrap, dockerd from Debian's docker.io with the btrfs graph
// driver, docker import, docker build of images/*), run mkbootimg on it, then
// boot it and check what the serial console shows: the image's init ran on a
// fresh rw layer, the top layer was applied, docker_image= picks the image,
// systemd reaches a login prompt, and the Docker store is never modified.
//
// They need root, QEMU and the Debian packages of internal/hostdeps/packages (make deps installs them). Outside CI a missing
// prerequisite skips them with the reason; in CI (CI=true) it fails them.
//
// Environment:
//
//	DOCKERINIT_QEMU=0           skip the boots (outside CI only)
//	DOCKERINIT_KVM=1            boot with KVM; the default is TCG because /dev/kvm
//	                            on the development machines has hung guests
//	DOCKERINIT_FIXTURE_DIR=DIR  where the disk is made and reused (default out/fixture)
//	DOCKERINIT_CACHE=DIR        debootstrap tarball cache (default /var/cache/dockerinit-tests)
package qemutests
