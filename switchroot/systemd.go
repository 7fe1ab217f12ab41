package switchroot

import (
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Timestamp is one moment on the two clocks systemd records: CLOCK_REALTIME and CLOCK_MONOTONIC.
type Timestamp struct {
	Realtime  time.Duration // since the Unix epoch
	Monotonic time.Duration // since boot, not counting suspend
}

// Now reads both clocks.
func Now() Timestamp {
	var rt, mt unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_REALTIME, &rt) // cannot fail for these clock IDs
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &mt)
	return Timestamp{Realtime: time.Duration(rt.Nano()), Monotonic: time.Duration(mt.Nano())}
}

// systemdArgs returns the arguments that tell systemd, when init resolves to it, that it starts
// from an initramfs which began at initrd, and the descriptor they name (-1: not systemd, or the
// descriptor could not be made, and then no arguments).
//
// systemd takes the initrd timestamp only from the state its own initrd hands over when it
// switches root: `--switched-root --system --deserialize=FD`, FD holding "name=value" lines
// ended by an empty line (src/core/manager-serialize.c). We hand over that one line, so that
// systemd-analyze reports "(initrd)" as it does after a systemd initrd. --switched-root keeps
// systemd's full first-boot setup, which --deserialize alone would skip as a re-exec.
func systemdArgs(newRoot, init string, initrd Timestamp) ([]string, int) {
	if initrd.Monotonic <= 0 || !isSystemd(newRoot, init) {
		return nil, -1
	}
	// The descriptor must survive the exec: no MFD_CLOEXEC. A memfd needs no writable file
	// system, and vanishes with systemd's last reference to it.
	fd, err := unix.MemfdCreate("dockerinit-serialization", 0)
	if err != nil {
		return nil, -1
	}
	data := []byte(serialization(initrd))
	if n, err := unix.Write(fd, data); err != nil || n != len(data) {
		unix.Close(fd)
		return nil, -1
	}
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		unix.Close(fd)
		return nil, -1
	}
	return []string{"--switched-root", "--system", "--deserialize=" + strconv.Itoa(fd)}, fd
}

// serialization is systemd's serialized manager state holding just the initrd timestamp: the
// manager section ("initrd-timestamp=REALTIME MONOTONIC" in microseconds, then an empty line),
// and no units.
func serialization(initrd Timestamp) string {
	return fmt.Sprintf("initrd-timestamp=%d %d\n\n", initrd.Realtime.Microseconds(), initrd.Monotonic.Microseconds())
}

// isSystemd reports whether init, resolved inside newRoot, is a binary named systemd, as
// /sbin/init is on systemd distributions (-> /lib/systemd/systemd). Another init would take the
// systemd arguments for its own.
func isSystemd(newRoot, init string) bool {
	fd, err := openInit(newRoot, init)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false
	}
	target, err := readlinkFd(fd)
	return err == nil && filepath.Base(target) == "systemd"
}

// readlinkFd returns the path fd was opened at, as the kernel knows it.
func readlinkFd(fd int) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(fd), buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}
