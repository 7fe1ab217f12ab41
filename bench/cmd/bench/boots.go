package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dockerinit/dockerinit/bench"
)

// bootCmdline is the one kernel command line of every boot: the original tutorial's, with
// testinit as the image's init (it prints its start time and boot.json, then powers off).
// initramfs-tools and dracut read root=, rootflags= and rw and ignore the rest.
const bootCmdline = "console=ttyS0 root=LABEL=linux rootflags=subvol=docker_rwlayer rw docker_path=docker " +
	"toplayer=LABEL=linux toplayer_path=boot_docker panic=-1 init=/usr/local/sbin/testinit"

// bootTimeout bounds one boot; TCG on two busy cores is slow, a stuck boot is cut short below.
const bootTimeout = 5 * time.Minute

// stuckSigns are console texts after which a boot will not reach the real init.
var stuckSigns = []string{"Kernel panic", "dockerinit: boot failed", "Gave up waiting", "(initramfs)",
	"emergency mode", "Emergency shell", "Entering emergency"}

// qemuArgs are the QEMU settings every boot shares.
func qemuArgs() []string {
	accel := []string{"-accel", "tcg"}
	if os.Getenv("DOCKERINIT_KVM") == "1" {
		accel = []string{"-accel", "kvm", "-cpu", "host"}
	}
	return append([]string{"-machine", "q35", "-m", "1024", "-smp", "2", "-nographic", "-no-reboot", "-nic", "none"}, accel...)
}

// machineBoot is one boot: kernel+initramfs in dir, disk, the kernel command line.
type machineBoot struct {
	dir, disk, cmdline string
	// late > 0 starts QEMU without the disk and hot-plugs it (QMP blockdev-add + device_add of a
	// virtio-blk-pci on a PCIe root port) this long after QEMU started.
	late time.Duration
	// plugged is set to how long after QEMU started the late disk was plugged.
	plugged *time.Duration
}

// boot boots m and returns the timeline read from the console, which is kept in logPath.
func boot(ctx context.Context, m machineBoot, logPath string) (bench.Boot, error) {
	args := append(qemuArgs(),
		"-kernel", filepath.Join(m.dir, "vmlinuz"), "-initrd", filepath.Join(m.dir, "initramfs.img"),
		"-append", m.cmdline)
	var qmpSock string
	if m.late > 0 {
		// A short directory: unix socket paths are limited to 107 bytes.
		tmp, err := os.MkdirTemp("", "dibench-qmp")
		if err != nil {
			return bench.Boot{}, err
		}
		defer os.RemoveAll(tmp)
		qmpSock = filepath.Join(tmp, "qmp.sock")
		args = append(args, "-qmp", "unix:"+qmpSock+",server=on,wait=off",
			"-device", "pcie-root-port,id="+hotplugPort+",chassis=1,slot=1")
	} else {
		args = append(args, "-drive", "file="+m.disk+",if=virtio,format=raw,cache=unsafe")
	}
	cmd := exec.Command("qemu-system-x86_64", args...)
	con := &console{stuck: make(chan string, 1)}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = con, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return bench.Boot{}, fmt.Errorf("start QEMU: %w", err)
	}
	started := time.Now()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var plugged chan plugResult // nil, so never ready, without a late disk
	plugCtx, stopPlug := context.WithCancel(ctx)
	defer stopPlug()
	if m.late > 0 {
		plugged = make(chan plugResult, 1)
		go func() {
			err := plugLate(plugCtx, qmpSock, m.disk, started.Add(m.late))
			plugged <- plugResult{time.Since(started), err}
		}()
	}
	timeout := time.After(bootTimeout)
	var waitErr error
wait:
	for {
		select {
		case err := <-exited:
			if err != nil {
				waitErr = fmt.Errorf("QEMU failed: %w: %s", err, strings.TrimSpace(stderr.String()))
			} else if plugged != nil {
				waitErr = errors.New("the guest powered off before the late disk was plugged")
			}
			break wait
		case r := <-plugged:
			plugged = nil
			if r.err != nil {
				waitErr = fmt.Errorf("hot-plug the disk: %w", r.err)
				break wait
			}
			if m.plugged != nil {
				*m.plugged = r.at
			}
		case sign := <-con.stuck:
			waitErr = fmt.Errorf("the boot is stuck: the console shows %q", sign)
			break wait
		case <-timeout:
			waitErr = fmt.Errorf("the guest did not power off within %v", bootTimeout)
			break wait
		case <-ctx.Done():
			waitErr = ctx.Err()
			break wait
		}
	}
	if plugged != nil { // still plugging: stop it before its socket's directory goes
		stopPlug()
		<-plugged
	}
	if waitErr != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	out := con.bytes()
	if err := os.WriteFile(logPath, out, 0o644); err != nil {
		return bench.Boot{}, err
	}
	if waitErr != nil {
		return bench.Boot{}, fmt.Errorf("%w (console in %s)", waitErr, logPath)
	}
	b, err := bench.ParseBoot(out)
	if err != nil {
		return bench.Boot{}, fmt.Errorf("%w (console in %s)", err, logPath)
	}
	return b, nil
}

// console collects QEMU's serial output and signals, once, the first sign of a stuck boot.
type console struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	stuck   chan string
	checked int // bytes before this offset were checked, but for the overlap of a sign
	said    bool
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	if c.said {
		return len(p), nil
	}
	const overlap = 32 // longer than every stuck sign
	from := max(0, c.checked-overlap)
	text := c.buf.Bytes()[from:]
	for _, s := range stuckSigns {
		if bytes.Contains(text, []byte(s)) {
			c.said = true
			c.stuck <- s
			break
		}
	}
	c.checked = c.buf.Len()
	return len(p), nil
}

func (c *console) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.buf.Bytes())
}

// bootRounds boots each generator's initramfs once per round, rotating who goes first. A
// baseline that does not boot is dropped with the reason; dockerinit not booting stops the bench.
func bootRounds(ctx context.Context, rounds int, gens []*generator, disk, logDir string) error {
	for r := range rounds {
		for i := range gens {
			g := gens[(i+r)%len(gens)]
			if g.dropped != nil {
				continue
			}
			m := machineBoot{dir: g.boot, disk: disk, cmdline: bootCmdline}
			if g.disk != "" {
				m.disk, m.cmdline = g.disk, g.cmdline
			}
			b, err := boot(ctx, m,
				filepath.Join(logDir, fmt.Sprintf("%s-%d.log", fileName(g.Name), r+1)))
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				if g.required {
					return fmt.Errorf("boot %s: %w", g.Name, err)
				}
				g.dropped = fmt.Errorf("it did not boot: %w", err)
				logf("boot %d/%d %s failed, left out of the boot comparison: %v", r+1, rounds, g.Name, err)
				continue
			}
			g.Boots = append(g.Boots, b)
			logf("boot %d/%d %s: Run /init at %.2f s, real init at %.2f s: initramfs %.2f s",
				r+1, rounds, g.Name, b.RunInitS, b.RealInitS, b.InitramfsS())
		}
	}
	return nil
}

// fileName makes a name fit for a log file name: "dockerinit (generic)" -> "dockerinit-generic".
func fileName(name string) string {
	return strings.NewReplacer(" ", "-", "(", "", ")", "", "/", "-", ",", "").Replace(name)
}
