package main

import (
	"bufio"
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/bench"
)

// describeMachine says what the figures were measured on; versions are those found on the way
// (the generators installed in the chroots).
func describeMachine(ctx context.Context, o options, kver string, versions []bench.Version) bench.Machine {
	m := bench.Machine{
		CPU:         procField("/proc/cpuinfo", "model name"),
		Cores:       runtime.NumCPU(),
		Image:       o.image,
		GuestKernel: kver,
		QEMU:        "qemu-system-x86_64 " + strings.Join(qemuArgs(), " ") + " -drive if=virtio,format=raw,cache=unsafe",
	}
	if kb, err := strconv.ParseFloat(strings.Fields(procField("/proc/meminfo", "MemTotal") + " 0")[0], 64); err == nil {
		m.MemoryGB = kb / (1 << 20)
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.HostKernel = unix.ByteSliceToString(u.Release[:])
	}
	first := func(name string, args ...string) string {
		out, err := output(ctx, name, args...)
		if err != nil {
			return "unknown (" + err.Error() + ")"
		}
		line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
		return line
	}
	m.Versions = append([]bench.Version{
		{Name: "dockerinit", Version: first("git", "-C", o.repo, "describe", "--always", "--dirty")},
		{Name: "Go", Version: runtime.Version()},
		{Name: "host OS", Version: strings.Trim(procField("/etc/os-release", "PRETTY_NAME"), `"`)},
		{Name: "QEMU", Version: first("qemu-system-x86_64", "--version")},
		{Name: "cp", Version: first("cp", "--version")},
		{Name: "btrfs-progs", Version: first("btrfs", "--version")},
	}, versions...)
	return m
}

// procField returns the value of the first "key: value" or "key=value" line of path.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			k, v, ok = strings.Cut(sc.Text(), "=")
		}
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
