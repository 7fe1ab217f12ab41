package rescue

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

func dmesgCmd(c *call) error {
	if err := c.flags("").parse(0, 0); err != nil {
		return err
	}
	log, err := c.sh.opts.System.KernelLog()
	if err != nil {
		return fmt.Errorf("read the kernel log: %w", err)
	}
	for _, l := range kernelLogLines(log) {
		fmt.Fprintln(c.stdout, l)
	}
	return nil
}

// kernelLogLines splits syslog(2)'s buffer into lines, without the "<priority>" each starts with.
func kernelLogLines(b []byte) []string {
	s := strings.TrimRight(string(b), "\n\x00")
	if s == "" {
		return nil
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if rest, ok := strings.CutPrefix(l, "<"); ok {
			if end := strings.IndexByte(rest, '>'); end > 0 && strings.Trim(rest[:end], "0123456789") == "" {
				lines[i] = rest[end+1:]
			}
		}
	}
	return lines
}

// module is one line of /proc/modules.
type module struct {
	name, size, refs string
	users            []string
}

// parseModules reads /proc/modules: "NAME SIZE REFCOUNT USERS STATE ADDRESS", USERS being "-" or
// "a,b,".
func parseModules(data string) ([]module, error) {
	var mods []module
	for i, l := range strings.Split(strings.TrimRight(data, "\n"), "\n") {
		if l == "" {
			continue
		}
		f := strings.Fields(l)
		if len(f) < 4 {
			return mods, fmt.Errorf("/proc/modules line %d %q: expected NAME SIZE REFCOUNT USERS ...", i+1, l)
		}
		m := module{name: f[0], size: f[1], refs: f[2]}
		if f[3] != "-" {
			m.users = strings.Split(strings.TrimSuffix(f[3], ","), ",")
		}
		mods = append(mods, m)
	}
	return mods, nil
}

func lsmodCmd(c *call) error {
	if err := c.flags("").parse(0, 0); err != nil {
		return err
	}
	data, err := os.ReadFile(c.sys("proc/modules"))
	if err != nil {
		return err
	}
	mods, err := parseModules(string(data))
	fmt.Fprintf(c.stdout, "%-19s %8s  %s\n", "Module", "Size", "Used by")
	for _, m := range mods {
		line := fmt.Sprintf("%-19s %8s  %s %s", m.name, m.size, m.refs, strings.Join(m.users, ","))
		fmt.Fprintln(c.stdout, strings.TrimRight(line, " "))
	}
	return err
}

func modprobeCmd(c *call) error {
	fs := c.flags("NAME...  (module names or aliases such as fs-vfat)")
	if err := fs.parse(1, -1); err != nil {
		return err
	}
	return c.sh.opts.System.LoadModules(fs.Args()...)
}

func rebootCmd(c *call) error   { return reboot(c, "Rebooting.", unix.LINUX_REBOOT_CMD_RESTART) }
func poweroffCmd(c *call) error { return reboot(c, "Powering off.", unix.LINUX_REBOOT_CMD_POWER_OFF) }

func reboot(c *call, what string, cmd int) error {
	if err := c.flags("").parse(0, 0); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, what)
	return c.sh.opts.System.Reboot(cmd)
}
