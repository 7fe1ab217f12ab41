// Command dockerinit is PID 1 of the dockerinit initramfs: it boots the machine into a Docker
// image (see the boot package). `dockerinit prepare` runs the same sequence up to the top layer,
// for the hooks of other initramfs generators.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/dockerinit/dockerinit/boot"
	"github.com/dockerinit/dockerinit/rescue"
	"github.com/dockerinit/dockerinit/status"
)

const usage = `dockerinit: boot a machine straight into a Docker image.

As /init of an initramfs made by mkbootimg (PID 1), it boots: it reads /etc/dockerinit.toml and
the kernel command line, finds the file system holding the image store, makes the rw layer from the
image (a btrfs snapshot, or an overlay of its layers), lays the top layer folder over it and
switches to the image's init.

Usage:
  dockerinit            (as PID 1 only)
  dockerinit prepare    run the boot sequence up to the top layer and exit (initramfs-tools, dracut
                        and mkinitcpio hooks, before they mount root=). A btrfs store's rw layer is a
                        subvolume: the caller mounts root= with rootflags=subvol=<rw layer> itself.
                        An overlay store's root is an overlay, left mounted for mount-root
  dockerinit mount-root DIR
                        after the caller mounted root= at DIR: lay the overlay that prepare made
                        over DIR; nothing to do after a btrfs store's prepare
  dockerinit status [--json]
                        in the booted system: which image booted, from where, how long each step
                        took, and with boot counting the image list, tries left and past boots
                        (--json: /run/dockerinit/boot.json as it is)
  dockerinit mark-good  in the booted system, with boot counting (docker_image=new,good
                        dockerinit.tries=N): this boot came up, stop counting its image. A runtime
                        systemd unit runs it after boot-complete.target; other inits call it
  dockerinit mark-bad   this boot is broken: the next boot takes the next image of the list

Updating to another image, rolling back and pinning are mkbootimg's (update, rollback, pin,
status), which keeps this binary, PID 1's, small.

Kernel command line: root= rootflags=subvol=NAME[,...] rootfstype= rw|ro docker_path= docker_image=
toplayer= toplayerfstype= toplayerflags= toplayer_path= init= dockerinit.timeout= dockerinit.rescue
dockerinit.debug dockerinit.namespace= dockerinit.tries=. See the README for each.
`

func main() {
	flag.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	if os.Getpid() == 1 {
		runInit()
		return
	}
	flag.Parse()
	switch flag.Arg(0) {
	case "prepare":
		s := boot.New(boot.Options{Mode: boot.Prepare, Log: boot.NewLogger()})
		if _, err := s.Run(); err != nil {
			s.Abandon()
			fmt.Fprintf(os.Stderr, "dockerinit prepare: %v\n", err)
			os.Exit(1)
		}
	case "mount-root":
		if flag.NArg() != 2 {
			fmt.Fprintln(os.Stderr, "dockerinit mount-root: want one argument, the folder where root= is mounted (initramfs-tools: ${rootmnt}, dracut: $NEWROOT)")
			os.Exit(2)
		}
		laid, err := boot.MountPrepared(flag.Arg(1))
		if err != nil {
			fmt.Fprintf(os.Stderr, "dockerinit mount-root: %v\n", err)
			os.Exit(1)
		}
		if laid {
			boot.NewLogger().Infof("the image's overlay is the new root at %s", flag.Arg(1))
		}
	case rescue.ChildCommand: // not in the usage: PID 1 runs it for its rescue shell
		os.Exit(rescue.ChildMain())
	case "status":
		sf := flag.NewFlagSet("dockerinit status", flag.ExitOnError)
		asJSON := sf.Bool("json", false, "print "+status.BootJSON+" as it is")
		_ = sf.Parse(flag.Args()[1:]) // ExitOnError: Parse exits on a bad flag
		if sf.NArg() > 0 {
			fmt.Fprintf(os.Stderr, "dockerinit status: unexpected argument %q; usage: dockerinit status [--json]\n", sf.Arg(0))
			os.Exit(2)
		}
		if err := status.Run(os.Stdout, "/", *asJSON); err != nil {
			fmt.Fprintf(os.Stderr, "dockerinit status: %v\n", err)
			os.Exit(1)
		}
	case "mark-good", "mark-bad":
		if flag.NArg() > 1 {
			fmt.Fprintf(os.Stderr, "dockerinit %s: unexpected argument %q\n", flag.Arg(0), flag.Arg(1))
			os.Exit(2)
		}
		msg, err := status.Mark("/", flag.Arg(0) == "mark-good")
		if err != nil {
			fmt.Fprintf(os.Stderr, "dockerinit %s: %v\n", flag.Arg(0), err)
			os.Exit(1)
		}
		fmt.Println(msg)
	default:
		flag.Usage()
		if flag.NArg() > 0 {
			fmt.Fprintf(os.Stderr, "\nunknown command %q\n", flag.Arg(0))
		} else {
			fmt.Fprintln(os.Stderr, "\nnot PID 1: nothing to boot here")
		}
		os.Exit(2)
	}
}

// runInit boots, and on failure explains and waits at the console, then resumes the boot at the
// failed step. It never returns: PID 1 exiting panics the kernel.
func runInit() {
	// Before anything can delete /etc/dockerinit.toml: a failed switch_root empties the initramfs.
	boot.LoadRescuePassword()
	log := boot.NewLogger()
	s := boot.New(boot.Options{Mode: boot.Full, InitArgs: os.Args[1:], Env: os.Environ(), Log: log})
	for {
		_, err := s.Run() // on success it has switched root, never to return
		boot.Fail(log, err)
	}
}
