package boot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/bootparam"
	"github.com/dockerinit/dockerinit/rescue"
)

// host is the rescue shell's System; one for the whole boot, so that its module loader is made
// once however many times the shell opens.
var host rescue.Host

// Fail explains a failed boot on the console and waits there: it returns when the user asks to
// retry. PID 1 must never exit (the kernel would panic), so this is the end of every failure path.
func Fail(log *Logger, err error) {
	log.write(levelDebug, "stopped: %v", err) // kept in dmesg; the console gets the block below
	fmt.Printf("\n*** dockerinit: boot failed ***\n%v\n\nNothing under the Docker root was changed.\n", err)
	retry := "the boot"
	var se *StepError
	if errors.As(err, &se) {
		retry = fmt.Sprintf("the boot from step %q", se.RetryAt)
	}
	if mounted(topLevelDir) {
		fmt.Printf("The btrfs top level (the Docker root, the rw layer) is mounted at %s for the rescue shell.\n", topLevelDir)
	}
	if perr := prompt(log, retry); perr != nil {
		log.Errorf("%v", perr)
	}
}

// Rescue prints msg on the console and opens the rescue shell; when the shell cannot run, the
// prompt to retry, reboot or power off. It returns nil when the boot should go on (or be retried).
func Rescue(log *Logger, msg string) error {
	fmt.Println(msg)
	if err := openShell(log); err != nil {
		fmt.Printf("\n%v\n", err)
		return prompt(log, "the boot")
	}
	return nil
}

// prompt asks at the console whether to retry (what retry names), open the rescue shell, reboot
// or power off. Enter alone retries, so a machine whose disk was late boots with one key.
func prompt(log *Logger, retry string) error {
	choices := "type shell, reboot or poweroff"
	if !isTerminal(os.Stdin) {
		choices = "type reboot or poweroff (no rescue shell: the console is not a terminal)"
	}
	in := bufio.NewReader(os.Stdin) // the console returns a line a read: nothing is read ahead
	for {
		fmt.Printf("\nPress Enter to retry %s, or %s: ", retry, choices)
		line, err := in.ReadString('\n')
		if err != nil {
			// No console input (none attached): wait and retry rather than spin or exit.
			time.Sleep(10 * time.Second)
			return nil
		}
		switch w := strings.TrimSpace(line); w {
		case "":
			return nil
		case "shell", "sh":
			err := openShell(log)
			if err == nil {
				return nil
			}
			fmt.Printf("\n%v\n", err)
		case "reboot":
			return host.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
		case "poweroff":
			return host.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
		default:
			fmt.Printf("%q is none of the choices.\n", w)
		}
	}
}

// openShell runs the rescue shell on the console until the user leaves it, asking first for the
// password of dockerinit.toml's [rescue] table. It reads that table alone, so that a typo
// elsewhere in the file, which stops the boot, does not also unlock the shell.
func openShell(log *Logger) error {
	if !isTerminal(os.Stdin) {
		return errors.New("no rescue shell: the console is not a terminal")
	}
	var rc bootparam.RescueConfig
	if data, err := os.ReadFile(configPath); err == nil {
		if rc, err = bootparam.DecodeRescue(data); err != nil {
			return fmt.Errorf("rescue shell locked: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rescue shell locked: %w", err)
	}
	log.write(levelDebug, "rescue shell opened")
	err := rescue.Run(context.Background(), rescue.Options{
		Console: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		Root: "/", System: &host, PasswordHash: rc.PasswordHash,
	})
	if err != nil {
		log.Warnf("%v", err)
		return err
	}
	log.write(levelDebug, "rescue shell closed")
	return nil
}

// isTerminal reports whether f is a terminal, on which the shell's line editing works.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
