package boot

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// shells are tried in order; the initramfs holds none unless mkbootimg was asked to add one.
var shells = []string{"/bin/sh", "/bin/bash", "/bin/busybox"}

// Fail explains a failed boot on the console and waits there: it returns when the user asks to
// retry. PID 1 must never exit (the kernel would panic), so this is the end of every failure path.
func Fail(log *Logger, err error) {
	log.write(levelDebug, "stopped: %v", err) // kept in dmesg; the console gets the block below
	msg := fmt.Sprintf("\n*** dockerinit: boot failed ***\n%v\n\nNothing under the Docker root was changed.", err)
	if rerr := Rescue(log, msg); rerr != nil {
		log.Errorf("%v", rerr)
	}
}

// Rescue prints msg on the console, then offers a shell if the initramfs has one, else a prompt to
// retry, reboot or power off. It returns nil when the boot should go on (or be retried).
func Rescue(log *Logger, msg string) error {
	con := os.Stdout
	fmt.Fprintln(con, msg)
	for _, sh := range shells {
		if _, err := os.Stat(sh); err != nil {
			continue
		}
		fmt.Fprintf(con, "\nStarting %s; `exit` retries the boot.\n", sh)
		cmd := exec.Command(sh)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.Env = append(os.Environ(), "PS1=(dockerinit rescue) # ")
		if err := cmd.Run(); err != nil {
			log.Warnf("rescue shell: %v", err)
		}
		return nil
	}
	in := bufio.NewReader(os.Stdin)
	for {
		fmt.Fprint(con, "\nNo shell in this initramfs. Press Enter to retry the boot, or type reboot or poweroff: ")
		line, err := in.ReadString('\n')
		if err != nil {
			// No console input (none attached): wait and retry rather than spin or exit.
			time.Sleep(10 * time.Second)
			return nil
		}
		switch strings.TrimSpace(line) {
		case "":
			return nil
		case "reboot":
			unix.Sync()
			return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
		case "poweroff":
			unix.Sync()
			return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
		}
	}
}
