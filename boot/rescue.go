package boot

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/bootparam"
	"github.com/dockerinit/dockerinit/rescue"
	"github.com/dockerinit/dockerinit/switchroot"
)

// host reboots or powers off the machine when asked at the prompt.
var host rescue.Host

// shellLock guards the rescue shell for the whole boot, from dockerinit.toml's [rescue] table:
// PID 1 reads the file's bytes as it starts (LoadRescuePassword), because a switch_root whose
// exec fails has emptied the initramfs, that file with it, and a missing file must not then open
// the shell with no password. They are decoded only when the shell is asked for: a first TOML
// decode costs tens of milliseconds of the boot under emulation. In dockerinit prepare, which
// switches nothing, the file is read at the first need.
var shellLock = sync.OnceValue(func() *rescue.Lock {
	data, err := rescueFile()
	return lockFrom(data, err)
})

// rescueFile is dockerinit.toml's bytes, read once.
var rescueFile = sync.OnceValues(func() ([]byte, error) { return os.ReadFile(rescueConfig) })

// rescueConfig is where rescueFile reads; a test points it elsewhere.
var rescueConfig = configPath

// LoadRescuePassword reads the file holding the rescue shell's password now, before anything can
// delete it.
func LoadRescuePassword() { _, _ = rescueFile() }

// lockFrom decodes the [rescue] table of the configuration read as data, err. It decodes that
// table alone, so that a typo elsewhere in the file, which stops the boot, does not also unlock
// the shell; a file that cannot be read or decoded keeps the shell locked.
func lockFrom(data []byte, err error) *rescue.Lock {
	if errors.Is(err, os.ErrNotExist) {
		return rescue.NewLock("", nil)
	}
	if err != nil {
		return rescue.NewLock("", err)
	}
	rc, err := bootparam.DecodeRescue(data)
	return rescue.NewLock(rc.PasswordHash, err)
}

// Fail explains a failed boot on the console and waits there: it returns when the user asks to
// retry, and never when the boot cannot be retried (a switch_root that failed past its point of
// no return), where only reboot and poweroff are left. PID 1 must never exit (the kernel would
// panic), so this is the end of every failure path.
func Fail(log *Logger, err error) {
	log.write(levelDebug, "stopped: %v", err) // kept in dmesg; the console gets the block below
	fmt.Printf("\n*** dockerinit: boot failed ***\n%v\n\nNothing under the image store was changed.\n", err)
	retry := "the boot"
	var se *StepError
	if errors.As(err, &se) {
		retry = fmt.Sprintf("the boot from step %q", se.RetryAt)
	}
	if errors.Is(err, switchroot.ErrNoReturn) {
		retry = "" // the steps would run again inside the new root, with no initramfs left
	}
	if mounted(topLevelDir) {
		fmt.Printf("The root file system (the image store, the rw layer) is mounted at %s for the rescue shell.\n", topLevelDir)
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
// or power off. Enter alone retries, so a machine whose disk was late boots with one key. With
// retry "", the boot cannot be retried and prompt never returns: the user reboots.
func prompt(log *Logger, retry string) error {
	choices := "type shell, reboot or poweroff"
	if !isTerminal(os.Stdin) {
		choices = "type reboot or poweroff (no rescue shell: the console is not a terminal)"
	}
	ask := fmt.Sprintf("\nPress Enter to retry %s, or %s: ", retry, choices)
	if retry == "" {
		ask = fmt.Sprintf("\nThe boot cannot be retried: %s: ", choices)
	}
	in := bufio.NewReader(os.Stdin) // the console returns a line a read: nothing is read ahead
	for {
		fmt.Print(ask)
		line, err := in.ReadString('\n')
		if err != nil {
			// No console input (none attached): wait and retry rather than spin or exit.
			time.Sleep(10 * time.Second)
			if retry == "" {
				continue
			}
			return nil
		}
		switch w := strings.TrimSpace(line); {
		case w == "" && retry != "":
			return nil
		case w == "shell" || w == "sh":
			if err := openShell(log); err != nil {
				fmt.Printf("\n%v\n", err)
			} else if retry != "" {
				return nil
			}
		case w == "reboot" || w == "poweroff":
			cmd := unix.LINUX_REBOOT_CMD_RESTART
			if w == "poweroff" {
				cmd = unix.LINUX_REBOOT_CMD_POWER_OFF
			}
			err := host.Reboot(cmd) // returns only when it failed
			if retry != "" {
				return err
			}
			fmt.Printf("\n%s: %v\n", w, err)
		default:
			fmt.Printf("%q is none of the choices.\n", w)
		}
	}
}

// openShell asks for the rescue password, then runs the rescue shell on the console in a child
// process until the user leaves it; a crash of the shell ends only that process.
func openShell(log *Logger) error {
	if !isTerminal(os.Stdin) {
		return errors.New("no rescue shell: the console is not a terminal")
	}
	if err := shellLock().Unlock(os.Stdin, os.Stdout); err != nil {
		return err
	}
	log.write(levelDebug, "rescue shell opened")
	if err := rescue.RunChild(os.Stdin, os.Stdout, os.Stderr); err != nil {
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
