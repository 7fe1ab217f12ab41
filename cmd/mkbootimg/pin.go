package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"text/tabwriter"

	"github.com/dockerinit/dockerinit/pin"
	"github.com/dockerinit/dockerinit/status"
)

func init() {
	commands["pin"] = command{"keep images safe from docker image prune -a and rmi (and podman's, containerd's)", runPin}
	commands["unpin"] = command{"remove the pins of images, leaving the images to the store's own tools", runUnpin}
	commands["pins"] = command{"list the pinned images", runPins}
	commands["status"] = command{"in a booted system: dockerinit status, and the pinned images", runStatus}
}

const pinHelpTail = `
The tool: --tool, or in a system dockerinit booted, the store of /run/dockerinit/boot.json:
docker for Docker's graph drivers and its containerd image store (namespace moby), podman for
containers-storage, ctr for other containerd namespaces. The CLI runs as usual, so DOCKER_HOST and
CONTAINERD_ADDRESS hold.

A pin is what the store's own clean-up honours. Docker and podman: a container that is created
and never started, dockerinit-pin-..., made from the image ID the reference names when it is
pinned, so prune -a and rmi without -f keep the image. containerd: an image name of its own,
dockerinit-pin/..., on the same manifest, which containerd's garbage collector keeps.
A pin keeps the image, not every name of it: docker rmi NAME of an image with other names, and
docker image prune -a, take names off. Pinning again names it again. docker container prune
and docker system prune remove pin containers: pin again afterwards.

Flags:
`

const pinHelp = `mkbootimg pin: keep images safe from their store's clean-up tools.

Usage:
  mkbootimg pin [--tool docker|podman|containerd] [--namespace NS] REF...

Each REF (a name or an image ID) is pinned on the image it names now. Pinning again is a no-op
for a reference whose image did not change, moves the pin when the name now names another
image, and names the image again when the name was taken off it while pinned.
` + pinHelpTail

const unpinHelp = `mkbootimg unpin: remove the pins of images; the images stay, for the store's tools to delete.

Usage:
  mkbootimg unpin [--tool docker|podman|containerd] [--namespace NS] REF...

REF is a reference as pinned (desktop and docker.io/library/desktop:latest are one), or a pin's
name as mkbootimg pins shows it. Only dockerinit's pins are ever removed.
` + pinHelpTail

const pinsHelp = `mkbootimg pins: list the pinned images: the reference, the image it keeps, the pin's name.

Usage:
  mkbootimg pins [--tool docker|podman|containerd] [--namespace NS]
` + pinHelpTail

// pinFlags are the flags every pin verb takes.
type pinFlags struct {
	tool, namespace, cli string
}

func addPinFlags(fs *flag.FlagSet) *pinFlags {
	f := &pinFlags{}
	fs.StringVar(&f.tool, "tool", "", "docker, podman or containerd (default: the booted store's, from "+status.BootJSON+")")
	fs.StringVar(&f.namespace, "namespace", "", "containerd's namespace (default: the booted one; nerdctl uses default, k3s k8s.io)")
	fs.StringVar(&f.cli, "cli", "", "the tool's command, when not docker, podman or ctr on $PATH (e.g. /usr/bin/docker)")
	return f
}

// bootReport reads the booted system's boot.json; a variable so that tests need no /run.
var bootReport = func() (status.Report, error) { return status.Read("/") }

// tool picks the store tool from the flags, else from the booted store.
func (f *pinFlags) toolFor() (pin.Tool, error) {
	var t pin.Tool
	if f.tool != "" {
		k, err := pin.ParseKind(f.tool)
		if err != nil {
			return t, fmt.Errorf("--tool: %w", err)
		}
		t.Kind = k
	} else {
		r, err := bootReport()
		if errors.Is(err, status.ErrNotBooted) {
			return t, errors.New("--tool docker, podman or containerd is needed: " + err.Error())
		}
		if err != nil {
			return t, err
		}
		if t, err = pin.ForStore(r.Store); err != nil {
			return t, fmt.Errorf("the booted store, from %s: %w", status.BootJSON, err)
		}
	}
	if f.namespace != "" {
		if t.Kind != pin.Containerd {
			return t, fmt.Errorf("--namespace is containerd's; the tool is %s", t.Kind)
		}
		t.Namespace = f.namespace
	}
	t.Command, t.Log = f.cli, os.Stdout
	return t, nil
}

// parseRefs parses flags given before, between or after any number of references, as parse
// does for a fixed number of arguments.
func parseRefs(fs *flag.FlagSet, args []string) ([]string, error) {
	var refs []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return refs, nil
		}
		refs = append(refs, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// pinVerb parses a verb that takes references and runs do on them.
func pinVerb(name, help string, args []string, do func(pin.Tool, context.Context, ...string) error) error {
	fs := newFlags(name, help)
	f := addPinFlags(fs)
	refs, err := parseRefs(fs, args)
	if err != nil {
		return err
	}
	if len(refs) == 0 {
		return errors.New("name at least one image; see --help")
	}
	t, err := f.toolFor()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return do(t, ctx, refs...)
}

func runPin(args []string) error { return pinVerb("pin", pinHelp, args, pin.Tool.Pin) }

func runUnpin(args []string) error { return pinVerb("unpin", unpinHelp, args, pin.Tool.Unpin) }

func runPins(args []string) error {
	fs := newFlags("pins", pinsHelp)
	f := addPinFlags(fs)
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	t, err := f.toolFor()
	if err != nil {
		return err
	}
	return printPins(t)
}

const statusHelp = `mkbootimg status: what booted, and what is pinned.

Usage (in a system dockerinit booted):
  mkbootimg status [--tool docker|podman|containerd] [--namespace NS]

It prints what dockerinit status prints (the image, why it booted, the boot counting list with
each image's tries, the past boots), then the images pinned in the booted store (mkbootimg pins).
dockerinit status itself, in PID 1's binary, does not ask the store's daemon.

Flags:
`

func runStatus(args []string) error {
	fs := newFlags("status", statusHelp)
	f := addPinFlags(fs)
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if err := status.Run(os.Stdout, "/", false); err != nil {
		return err
	}
	t, err := f.toolFor()
	if err != nil {
		return err
	}
	t.Log = nil
	fmt.Println("Pinned images:")
	return printPins(t)
}

// printPins lists the pins of t's store as a table.
func printPins(t pin.Tool) error {
	if err := t.Check(context.Background()); err != nil {
		return err
	}
	pins, err := t.List(context.Background())
	if err != nil {
		return err
	}
	if len(pins) == 0 {
		fmt.Printf("no image is pinned in the %s store\n", t.Kind)
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "REF\tIMAGE ID\tPIN")
	for _, p := range pins {
		fmt.Fprintf(w, "%s\t%s\t%s\n", p.Ref, p.ImageID, p.Name)
	}
	return w.Flush()
}
