// Command mkbootimg builds what boots a machine into a Docker image: the image's own kernel and an
// initramfs with dockerinit, its configuration and the kernel's modules. Each subcommand lives in
// its own file; this one only dispatches.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
)

// command is one subcommand: run gets the arguments after its name.
type command struct {
	summary string
	run     func(args []string) error
}

// commands is filled by the subcommands' files; "build" is also what runs without a subcommand.
var commands = map[string]command{}

func main() {
	args := os.Args[1:]
	name := "build"
	if len(args) > 0 {
		if _, ok := commands[args[0]]; ok {
			name, args = args[0], args[1:]
		} else if args[0] == "help" {
			usage()
			return
		}
	}
	err := commands[name].run(args)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		msg := strings.TrimSuffix(err.Error(), "\n")
		fmt.Fprintf(os.Stderr, "mkbootimg %s: %s\n", name, msg)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, "mkbootimg: make kernel + initramfs that boot a machine straight into a Docker image.\n\nCommands (mkbootimg COMMAND --help for each):\n")
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(os.Stderr, "\nWithout a command, mkbootimg builds (mkbootimg --docker-root DIR --image REF --out DIR).\n")
}

// newFlags makes a subcommand's flag set whose --help prints head, then the flags.
func newFlags(name, head string) *flag.FlagSet {
	fs := flag.NewFlagSet("mkbootimg "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), head)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args and refuses stray positional arguments beyond want.
// Flags may come before or after the arguments (mkbootimg unpack FILE DIR --force), as users of
// GNU tools expect; the flag package alone stops at the first argument.
func parse(fs *flag.FlagSet, args []string, want int) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(positional) != want {
		return fmt.Errorf("want %d argument(s), got %d (%s); see --help", want, len(positional), strings.Join(positional, " "))
	}
	// Parse the arguments alone once more so that fs.Arg(i) returns them.
	return fs.Parse(append([]string{"--"}, positional...))
}
