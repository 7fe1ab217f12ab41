// Package rescue owns dockerinit's rescue shell: a POSIX shell (mvdan.cc/sh) whose commands are
// built into dockerinit, u-root's core utilities plus the few a failed boot calls for (mount,
// blkid, dmesg, lsmod, modprobe, btrfs-subvolumes, reboot), so that it works in an initramfs that
// holds nothing else. Commands that are not built in run from $PATH as usual, e.g. from a mounted
// root file system. At boot the shell runs in a child process of PID 1 (RunChild), behind the
// password that PID 1 asks for first (Lock).
package rescue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/interp"
	"mvdan.cc/sh/v3/syntax"
)

// System is what the commands do to the machine beyond reading and writing files: Host at boot,
// a fake in tests.
type System interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
	Unmount(target string, flags int) error
	KernelLog() ([]byte, error)        // the kernel's ring buffer, as syslog(2) READ_ALL gives it
	LoadModules(names ...string) error // by module name or alias, with their dependencies
	Reboot(cmd int) error              // unix.LINUX_REBOOT_CMD_RESTART or _POWER_OFF; syncs first
}

// Options configure one shell session.
type Options struct {
	// Console is where command lines are read, and the commands' stdin.
	Console        *os.File
	Stdout, Stderr io.Writer
	// Root is where /proc, /sys and /dev are found: "/" at boot.
	Root   string
	System System
}

// Run runs the shell until `exit` or the end of the console's input, and returns nil: the caller
// then goes on booting, or retries a failed boot. Errors mean the shell could not run. It asks
// for no password: as PID 1, dockerinit asks before it starts the shell (see Lock, RunChild).
func Run(ctx context.Context, opts Options) error {
	sh, err := newShell(opts)
	if err != nil {
		return err
	}
	fmt.Fprintln(opts.Stdout, "dockerinit rescue shell. `help` lists the commands; `exit` goes on booting; a failed boot resumes at the step that failed.")
	return sh.interact(ctx)
}

// shell is one session: the interpreter and the built-in commands.
type shell struct {
	opts     Options
	runner   *interp.Runner
	commands map[string]command
}

// command is a built-in command.
type command struct {
	summary string // one line for help
	run     func(c *call) error
}

// call is one run of a built-in command, with the interpreter's state at that point.
type call struct {
	ctx            context.Context
	sh             *shell
	name           string
	args           []string // without the name
	dir            string   // the shell's working directory (cd does not chdir the process)
	env            expand.Environ
	stdin          io.Reader
	stdout, stderr io.Writer
}

// path makes p absolute against the shell's working directory.
func (c *call) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

// sys is a path under the shell's Root (/proc, /sys, /dev).
func (c *call) sys(p string) string { return filepath.Join(c.sh.opts.Root, p) }

// usageError is a command used wrongly: the shell prints the usage and the command exits 2.
type usageError struct{ usage string }

func (e *usageError) Error() string { return "usage: " + e.usage }

func newShell(opts Options) (*shell, error) {
	sh := &shell{opts: opts}
	sh.commands = commands()
	env := os.Environ()
	if os.Getenv("PATH") == "" {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	var err error
	sh.runner, err = interp.New(
		interp.StdIO(opts.Console, opts.Stdout, opts.Stderr),
		interp.Env(expand.ListEnviron(env...)),
		interp.ExecHandlers(sh.dispatch),
	)
	if err != nil {
		return nil, fmt.Errorf("start the rescue shell: %w", err)
	}
	return sh, nil
}

// dispatch runs the built-in commands and passes the others on to $PATH.
func (sh *shell) dispatch(next interp.ExecHandlerFunc) interp.ExecHandlerFunc {
	return func(ctx context.Context, args []string) error {
		hc := interp.HandlerCtx(ctx)
		cmd, ok := sh.commands[args[0]]
		if !ok {
			if _, err := interp.LookPathDir(hc.Dir, hc.Env, args[0]); err != nil {
				fmt.Fprintf(hc.Stderr, "%s: no such command; `help` lists the built-in ones\n", args[0])
				return interp.NewExitStatus(127)
			}
			return next(ctx, args)
		}
		c := &call{ctx: ctx, sh: sh, name: args[0], args: args[1:], dir: hc.Dir, env: hc.Env,
			stdin: hc.Stdin, stdout: hc.Stdout, stderr: hc.Stderr}
		err := runSafely(cmd, c)
		if _, ok := interp.IsExitStatus(err); ok || err == nil {
			return err
		}
		fmt.Fprintf(hc.Stderr, "%s: %v\n", args[0], err)
		if errors.As(err, new(*usageError)) {
			return interp.NewExitStatus(2)
		}
		return interp.NewExitStatus(1)
	}
}

// runSafely turns a panic of a command into its error, so that the session and what was done in it
// (variables, the directory) survive a bug in one command.
func runSafely(cmd command, c *call) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error (please report it): %v", r)
		}
	}()
	return cmd.run(c)
}

func (sh *shell) prompt() string { return "rescue:" + sh.runner.Dir + "# " }

// interact reads and runs command lines until exit or the end of the input.
func (sh *shell) interact(ctx context.Context) error {
	out := sh.opts.Stdout
	parser := syntax.NewParser()
	for {
		fmt.Fprint(out, sh.prompt())
		err := parser.Interactive(sh.opts.Console, func(stmts []*syntax.Stmt) bool {
			if parser.Incomplete() {
				fmt.Fprint(out, "> ")
				return true
			}
			for _, st := range stmts {
				if err := sh.runner.Run(ctx, st); err != nil {
					if _, ok := interp.IsExitStatus(err); !ok {
						fmt.Fprintln(sh.opts.Stderr, err)
					}
				}
				if sh.runner.Exited() {
					return false
				}
			}
			fmt.Fprint(out, sh.prompt())
			return true
		})
		if err == nil || sh.runner.Exited() {
			return nil
		}
		// A syntax error: say so and read on, as shells do.
		fmt.Fprintf(sh.opts.Stderr, "syntax error: %v\n", err)
	}
}

// help lists the built-in commands.
func help(c *call) error {
	fmt.Fprintln(c.stdout, "Built-in commands (most take -h):")
	for _, n := range slices.Sorted(maps.Keys(c.sh.commands)) {
		fmt.Fprintf(c.stdout, "  %-17s %s\n", n, c.sh.commands[n].summary)
	}
	fmt.Fprintln(c.stdout, "Shell built-ins: cd pwd echo printf test [ read set export unset source eval exec true false exit")
	fmt.Fprintln(c.stdout, "`exit` (or Ctrl-D) leaves the shell and goes on booting, retrying a failed boot.")
	fmt.Fprintln(c.stdout, "Other commands run from $PATH, e.g. from a root file system you mounted.")
	return nil
}
