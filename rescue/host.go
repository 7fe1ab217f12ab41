package rescue

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/kmod"
)

// Host is the machine itself: the System of the shell at boot. Its zero value is ready to use.
type Host struct {
	mu      sync.Mutex
	modules *kmod.Loader // made on the first modprobe, from the initramfs's load plan
}

func (*Host) Mount(source, target, fstype string, flags uintptr, data string) error {
	return unix.Mount(source, target, fstype, flags, data)
}

func (*Host) Unmount(target string, flags int) error { return unix.Unmount(target, flags) }

func (*Host) KernelLog() ([]byte, error) {
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_SIZE_BUFFER, nil)
	if err != nil {
		return nil, fmt.Errorf("syslog(2) size: %w", err)
	}
	buf := make([]byte, n)
	n, err = unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
	if err != nil {
		return nil, fmt.Errorf("syslog(2) read: %w", err)
	}
	return buf[:n], nil
}

func (h *Host) LoadModules(names ...string) error {
	h.mu.Lock()
	if h.modules == nil {
		l, err := kmod.NewLoader("/")
		if err != nil {
			h.mu.Unlock()
			return err
		}
		h.modules = l
	}
	l := h.modules
	h.mu.Unlock()
	return l.Load(names...)
}

// Reboot syncs the file systems first: whatever the shell wrote must survive.
func (*Host) Reboot(cmd int) error {
	unix.Sync()
	return unix.Reboot(cmd)
}
