// Package pin owns the references that keep the images a machine boots from safe from its
// store's own clean-up tools: `docker image prune -a`, `docker rmi` without -f, and their podman
// and containerd counterparts. It makes them from the booted system with the store's own CLI
// (the initramfs never writes a store), so each daemon honours them by its own rules:
//
//   - Docker (graph drivers and Docker's containerd image store alike) and podman: a container
//     that is created and never started, named dockerinit-pin-..., labelled with the reference,
//     made from the image ID the reference names when it is pinned. prune -a skips an image a
//     container uses and rmi without -f refuses to delete it, so the image stays whatever
//     happens to its names; made from the ID, the pin does not follow a tag that moves later.
//   - containerd (ctr): ctr images rm honours no container, so the pin is an image name of its
//     own, dockerinit-pin/...:<digest>, on the same manifest: containerd's garbage collector
//     keeps the content and the unpacked snapshots of every image that has a name.
//
// A pin keeps an image, not each of its names: Docker and podman let `rmi NAME` and Docker's
// `image prune -a` take a name off an image that has other names, and ctr removes any name.
// Pin names such a name again from its pin (see Tool.Pin), and every pin is listed with the
// image ID it keeps, which boots as it is (sha256:<id>).
package pin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"slices"
	"strings"

	"github.com/dockerinit/dockerinit/imagestore"
)

// Kind is the store tool a pin is made with.
type Kind int

const (
	// Docker is dockerd through the docker CLI, with any graph driver or the containerd image
	// store.
	Docker Kind = iota + 1
	// Podman is containers-storage through the podman CLI.
	Podman
	// Containerd is a containerd namespace through the ctr CLI.
	Containerd
)

func (k Kind) String() string {
	switch k {
	case Docker:
		return "docker"
	case Podman:
		return "podman"
	case Containerd:
		return "containerd"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// ParseKind reads a --tool value: docker, podman or containerd.
func ParseKind(s string) (Kind, error) {
	for _, k := range []Kind{Docker, Podman, Containerd} {
		if s == k.String() {
			return k, nil
		}
	}
	return 0, fmt.Errorf("tool %q: expected docker, podman or containerd", s)
}

// The labels and name prefixes that mark dockerinit's pins: nothing without both is touched.
const (
	LabelRef   = "org.dockerinit.pin"       // the reference as pinned
	LabelImage = "org.dockerinit.pin.image" // the image ID it named then
	// containerPrefix starts the name of a pin container (Docker, podman).
	containerPrefix = "dockerinit-pin-"
	// imagePrefix starts the name of a pin image (containerd).
	imagePrefix = "dockerinit-pin/"
	// pinCommand is the command of a pin container. It never runs; it is given because Docker
	// refuses to create a container from an image without CMD or ENTRYPOINT.
	pinCommand = "/dockerinit-pin"
)

// Pinned is one pin as the store shows it.
type Pinned struct {
	Ref     string // the reference pinned, as given (a full image ID for an ID)
	ImageID string // the image it keeps (containerd: the manifest or index digest)
	Name    string // the pin's own name: a container (Docker, podman) or an image (containerd)
}

// Runner runs one command and returns its standard output. Its error says what was run and
// carries the command's standard error; a missing program wraps exec.ErrNotFound or fs.ErrNotExist.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// Tool is a store's CLI, which makes and removes the pins.
type Tool struct {
	Kind      Kind
	Namespace string    // containerd's namespace (ctr -n); unused by Docker and podman
	Command   string    // the CLI; "" is docker, podman or ctr on $PATH
	Args      []string  // global flags put before every verb: -H unix://..., --root DIR, --address SOCK
	Run       Runner    // nil runs the command (tests pass a fake)
	Log       io.Writer // told what changed, a line each (pinned, unpinned, named again); nil: nothing
}

// ForStore picks the tool of a store from its kind as boot.json's "store" and `dockerinit
// status` give it (imagestore's Kind). containerd's namespace moby is Docker's containerd image
// store: its images are dockerd's, pinned with docker like those of a graph driver.
func ForStore(kind string) (Tool, error) {
	switch {
	case strings.HasPrefix(kind, "Docker's "):
		return Tool{Kind: Docker}, nil
	case strings.HasPrefix(kind, "containers-storage"):
		return Tool{Kind: Podman}, nil
	case strings.HasPrefix(kind, "containerd"):
		_, ns, ok := strings.Cut(kind, "namespace ")
		ns, _, _ = strings.Cut(ns, ")")
		if !ok || ns == "" {
			return Tool{}, fmt.Errorf("store %q names no containerd namespace; pass --tool containerd --namespace NS", kind)
		}
		if ns == "moby" {
			return Tool{Kind: Docker}, nil
		}
		return Tool{Kind: Containerd, Namespace: ns}, nil
	}
	return Tool{}, fmt.Errorf("store %q is none dockerinit pins in (Docker, containers-storage, containerd); pass --tool", kind)
}

func (t Tool) command() string {
	if t.Command != "" {
		return t.Command
	}
	if t.Kind == Containerd {
		return "ctr"
	}
	return t.Kind.String()
}

// run runs a verb of the tool with its global flags (and ctr's namespace).
func (t Tool) run(ctx context.Context, args ...string) ([]byte, error) {
	all := slices.Clone(t.Args)
	if t.Kind == Containerd {
		all = append(all, "-n", t.Namespace)
	}
	all = append(all, args...)
	run := t.Run
	if run == nil {
		run = Exec
	}
	return run(ctx, t.command(), all...)
}

func (t Tool) logf(format string, a ...any) {
	if t.Log != nil {
		fmt.Fprintf(t.Log, format+"\n", a...)
	}
}

// Exec is the Runner that runs the command.
func Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		line := strings.Join(append([]string{name}, args...), " ")
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return stdout.Bytes(), fmt.Errorf("%s: %w: %s", line, err, msg)
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w", line, err)
	}
	return stdout.Bytes(), nil
}

// Check tells whether the CLI runs and its daemon answers, and if not, what to install or start.
func (t Tool) Check(ctx context.Context) error {
	if t.Kind == Containerd && t.Namespace == "" {
		return errors.New("containerd: no namespace given; pass --namespace NS (the store's: nerdctl uses default, k3s k8s.io)")
	}
	var err error
	switch t.Kind {
	case Docker:
		_, err = t.run(ctx, "version", "--format", "{{.Server.Version}}")
	case Podman, Containerd:
		_, err = t.run(ctx, "version")
	default:
		return fmt.Errorf("no tool chosen (%v); pass --tool docker, podman or containerd", t.Kind)
	}
	if err == nil {
		return nil
	}
	pkg := map[Kind]string{Docker: "docker.io (or docker-ce-cli)", Podman: "podman", Containerd: "containerd"}[t.Kind]
	daemon := map[Kind]string{Docker: "dockerd: systemctl start docker", Containerd: "containerd: systemctl start containerd"}[t.Kind]
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is not installed (%w); install it: apt-get install %s", t.command(), err, pkg)
	}
	if daemon != "" {
		return fmt.Errorf("%s could not reach its daemon: %w; start %s", t.command(), err, daemon)
	}
	return fmt.Errorf("%s does not run: %w", t.command(), err)
}

// key is what makes two references the same pin: the canonical name (desktop is
// docker.io/library/desktop:latest), or "sha256:" and the hex digits of an ID.
func key(ref string) (string, error) {
	r, err := imagestore.ParseReference(ref)
	if err != nil {
		return "", err
	}
	if r.IsID() {
		// A bare hex string is both an ID prefix and a name; the stores' users mean the ID.
		return r.ID(), nil
	}
	n, _ := r.Name()
	return n, nil
}

// sameKey tells whether a pin's reference is the one key names: equal, or for an ID prefix the
// full ID it starts.
func sameKey(pinRef, k string) bool {
	pk, err := key(pinRef)
	if err != nil {
		return false
	}
	return pk == k || (strings.HasPrefix(k, "sha256:") && strings.HasPrefix(pk, k))
}

// pinName names the pin of reference key k on image id: readable (the reference's slug), unique
// for the reference (a hash of k, as slugs can collide) and for the image (its ID's first
// digits), so that a reference that moves to another image gets a new pin beside the old one.
func pinName(kind Kind, ref, k, id string) string {
	slug := "image"
	if r, err := imagestore.ParseReference(ref); err == nil && r.Slug() != "" {
		slug = r.Slug()
	}
	if len(slug) > 64 {
		slug = strings.TrimRight(slug[:64], "-._")
	}
	sum := sha256.Sum256([]byte(k))
	_, hexID, _ := strings.Cut(id, ":")
	if hexID == "" {
		hexID = id
	}
	hexID = hexID[:min(12, len(hexID))]
	if kind == Containerd {
		return imagePrefix + slug + "-" + hex.EncodeToString(sum[:4]) + ":" + hexID
	}
	return containerPrefix + slug + "-" + hex.EncodeToString(sum[:4]) + "-" + hexID
}

// List gives dockerinit's pins, in the store's order.
func (t Tool) List(ctx context.Context) ([]Pinned, error) {
	if t.Kind == Containerd {
		out, err := t.run(ctx, "images", "ls")
		if err != nil {
			return nil, fmt.Errorf("listing containerd's images: %w", err)
		}
		var pins []Pinned
		for _, img := range parseImageTable(out) {
			if ref := img.labels[LabelRef]; ref != "" && strings.HasPrefix(img.name, imagePrefix) {
				pins = append(pins, Pinned{Ref: ref, ImageID: img.digest, Name: img.name})
			}
		}
		return pins, nil
	}
	out, err := t.run(ctx, "ps", "-a", "-q", "--no-trunc", "--filter", "label="+LabelRef)
	if err != nil {
		return nil, fmt.Errorf("listing the pin containers: %w", err)
	}
	ids := strings.Fields(string(out))
	if len(ids) == 0 {
		return nil, nil
	}
	out, err = t.run(ctx, append([]string{"container", "inspect"}, ids...)...)
	if err != nil {
		return nil, fmt.Errorf("reading the pin containers: %w", err)
	}
	return parseInspect(out)
}

// resolve gives the image ID ref names now, or "" when the store has no such image.
func (t Tool) resolve(ctx context.Context, ref string) (string, error) {
	if t.Kind == Containerd {
		out, err := t.run(ctx, "images", "ls")
		if err != nil {
			return "", fmt.Errorf("listing containerd's images: %w", err)
		}
		return resolveTable(parseImageTable(out), ref)
	}
	out, err := t.run(ctx, "image", "inspect", "--format", "{{.Id}}", ref)
	if err != nil {
		if isNoSuchImage(err) {
			return "", nil
		}
		return "", fmt.Errorf("looking up image %s: %w", ref, err)
	}
	id := strings.TrimSpace(string(out))
	if id == "" || strings.ContainsAny(id, " \n\t") {
		return "", fmt.Errorf("looking up image %s: %s image inspect gave %q, expected one image ID", ref, t.command(), id)
	}
	return id, nil
}

// isNoSuchImage tells a missing image from a failure: both CLIs say so on stderr.
func isNoSuchImage(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "no such image") || strings.Contains(s, "image not known")
}

// resolveTable finds ref among containerd's images: by name as given, by canonical name, or by
// digest (an ID or ID prefix, which Docker shows for this store).
func resolveTable(imgs []tableImage, ref string) (string, error) {
	k, err := key(ref)
	if err != nil {
		return "", err
	}
	var found []string
	for _, img := range imgs {
		ik, _ := key(img.name)
		switch {
		case img.name == ref || (ik != "" && ik == k):
			return img.digest, nil
		case strings.HasPrefix(k, "sha256:") && strings.HasPrefix(img.digest, k) && !slices.Contains(found, img.digest):
			found = append(found, img.digest)
		}
	}
	switch len(found) {
	case 0:
		return "", nil
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("image %s: the prefix names %d images (%s); give more digits", ref, len(found), strings.Join(found, ", "))
}

// Pin pins each reference, every one it can, and joins the errors of the others. A reference
// already pinned on the image it names now is left as it is; one that names another image
// than its pin (a tag moved) gets a pin on the new image, and the old pin goes once the new one
// is made. A name gone from the store whose pin remains (rmi of one of several names, Docker's
// prune -a, ctr images rm) is given back to the image its pin keeps.
func (t Tool) Pin(ctx context.Context, refs ...string) error {
	if err := t.Check(ctx); err != nil {
		return err
	}
	pins, err := t.List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, ref := range refs {
		if err := t.pinOne(ctx, ref, pins); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (t Tool) pinOne(ctx context.Context, ref string, pins []Pinned) error {
	if err := checkRef(ref); err != nil {
		return err
	}
	id, err := t.resolve(ctx, ref)
	if err != nil {
		return err
	}
	k, err := key(ref)
	if err != nil {
		return err
	}
	var mine []Pinned
	for _, p := range pins {
		if sameKey(p.Ref, k) {
			mine = append(mine, p)
		}
	}
	if id == "" {
		if len(mine) == 0 {
			return fmt.Errorf("image %s is not in the %s store, so it cannot be pinned; pull, build or load it first", ref, t.Kind)
		}
		return t.restore(ctx, ref, mine[len(mine)-1])
	}
	if strings.HasPrefix(k, "sha256:") {
		// An ID is pinned by its full self, so that a prefix and the full ID are one pin.
		ref, k = fullID(t.Kind, id), "sha256:"+strings.TrimPrefix(id, "sha256:")
	}
	name := pinName(t.Kind, ref, k, id)
	if !slices.ContainsFunc(mine, func(p Pinned) bool { return p.Name == name }) {
		if err := t.create(ctx, ref, id, name); err != nil {
			return err
		}
		t.logf("pinned %s (image %s) as %s", ref, id, name)
	}
	for _, p := range mine {
		if p.Name != name {
			if err := t.remove(ctx, p); err != nil {
				return err
			}
			t.logf("unpinned %s's former image %s (%s): %s names %s now", p.Ref, p.ImageID, p.Name, ref, id)
		}
	}
	return nil
}

// fullID gives an image ID as the kind's CLI takes and shows it: podman's have no "sha256:".
func fullID(kind Kind, id string) string {
	if kind == Podman || strings.HasPrefix(id, "sha256:") {
		return id
	}
	return "sha256:" + id
}

// checkRef refuses what no store names an image by, and what would not survive as a label
// value in ctr's table (whitespace, commas).
func checkRef(ref string) error {
	if ref == "" || strings.ContainsAny(ref, " \t\r\n,=") {
		return fmt.Errorf("image %q: expected NAME[:TAG], NAME@sha256:<digest> or an image ID, with no spaces, commas or '='", ref)
	}
	_, err := imagestore.ParseReference(ref)
	return err
}

func (t Tool) create(ctx context.Context, ref, id, name string) error {
	var err error
	if t.Kind == Containerd {
		// The new name goes on the image the reference names now; the labels say whose pin it
		// is. Named but unlabelled after an interruption, it is pinned again by the next run
		// (ctr images tag refuses an existing name, so that one is removed first).
		if _, err = t.run(ctx, "images", "tag", "--force", t.sourceName(ctx, ref), name); err == nil {
			_, err = t.run(ctx, "images", "label", name, LabelRef+"="+ref, LabelImage+"="+id)
		}
	} else {
		_, err = t.run(ctx, "create", "--pull", "never", "--network", "none", "--name", name,
			"--label", LabelRef+"="+ref, "--label", LabelImage+"="+id, id, pinCommand)
		if err != nil && strings.Contains(strings.ToLower(err.Error()), "already in use") {
			// create makes the name and the label in one step, and List found no pin of this
			// name: the container is not dockerinit's to replace.
			return fmt.Errorf("pinning %s: a container named %s exists without dockerinit's label %s: %w; rename or remove it", ref, name, LabelRef, err)
		}
	}
	if err != nil {
		return fmt.Errorf("pinning %s: %w", ref, err)
	}
	return nil
}

// sourceName gives the image name ctr images tag copies for ref: ctr takes names, not digests,
// and the one resolve found may be the canonical form of what was typed.
func (t Tool) sourceName(ctx context.Context, ref string) string {
	out, err := t.run(ctx, "images", "ls")
	if err != nil {
		return ref
	}
	imgs := parseImageTable(out)
	id, _ := resolveTable(imgs, ref)
	k, _ := key(ref)
	for _, img := range imgs {
		if ik, _ := key(img.name); img.name == ref || (ik != "" && ik == k) {
			return img.name
		}
	}
	for _, img := range imgs {
		if img.digest == id {
			return img.name
		}
	}
	return ref
}

// restore names ref again on the image its pin keeps.
func (t Tool) restore(ctx context.Context, ref string, p Pinned) error {
	if _, ok := mustName(ref); !ok {
		return fmt.Errorf("image %s is not in the %s store, though %s pins it; check it with %s ps -a and %s images", ref, t.Kind, p.Name, t.command(), t.command())
	}
	var err error
	if t.Kind == Containerd {
		name := ref
		if n, ok := mustName(ref); ok {
			name = n
		}
		_, err = t.run(ctx, "images", "tag", p.Name, name)
	} else {
		_, err = t.run(ctx, "tag", p.ImageID, ref)
	}
	if err != nil {
		return fmt.Errorf("image %s is gone from the store but pinned as %s (image %s), and naming it again failed: %w", ref, p.Name, p.ImageID, err)
	}
	t.logf("named image %s %s again: the name was gone, its pin %s kept the image", p.ImageID, ref, p.Name)
	return nil
}

// mustName gives the canonical name of a reference that is a name.
func mustName(ref string) (string, bool) {
	r, err := imagestore.ParseReference(ref)
	if err != nil || r.IsID() {
		return "", false
	}
	return r.Name()
}

func (t Tool) remove(ctx context.Context, p Pinned) error {
	var err error
	if t.Kind == Containerd {
		_, err = t.run(ctx, "images", "rm", p.Name)
	} else {
		_, err = t.run(ctx, "rm", p.Name)
	}
	if err != nil {
		return fmt.Errorf("unpinning %s (%s): %w", p.Ref, p.Name, err)
	}
	return nil
}

// Unpin removes the pins of each reference (by the reference pinned, or by a pin's name); the
// images stay, for the store's own tools to delete. A reference with no pin is no error.
func (t Tool) Unpin(ctx context.Context, refs ...string) error {
	if err := t.Check(ctx); err != nil {
		return err
	}
	pins, err := t.List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, ref := range refs {
		k, _ := key(ref)
		for _, p := range pins {
			if p.Name == ref || (k != "" && sameKey(p.Ref, k)) {
				if err := t.remove(ctx, p); err != nil {
					errs = append(errs, err)
					continue
				}
				t.logf("unpinned %s (image %s, %s)", p.Ref, p.ImageID, p.Name)
			}
		}
	}
	return errors.Join(errs...)
}

// Sync makes the pins those of list, the images a machine may boot (its fallback list, and the
// booted image's ID so that it stays pinned even once its tag has moved): it pins every entry
// and removes every dockerinit pin of a reference not in the list. An entry that cannot be
// pinned (gone from the store with no pin) is reported, and the others are still done; pins are
// removed only after, so an interrupted Sync leaves extra pins, never missing ones, and running
// it again finishes the job.
func (t Tool) Sync(ctx context.Context, list []string) error {
	pinErr := t.Pin(ctx, list...)
	if pinErr != nil && t.Check(ctx) != nil {
		return pinErr
	}
	var keys []string
	for _, ref := range list {
		k, err := key(ref)
		if err != nil {
			continue
		}
		if strings.HasPrefix(k, "sha256:") {
			if id, err := t.resolve(ctx, ref); err == nil && id != "" {
				k = "sha256:" + strings.TrimPrefix(id, "sha256:")
			}
		}
		keys = append(keys, k)
	}
	pins, err := t.List(ctx)
	if err != nil {
		return errors.Join(pinErr, err)
	}
	var errs []error
	for _, p := range pins {
		if slices.ContainsFunc(keys, func(k string) bool { return sameKey(p.Ref, k) }) {
			continue
		}
		if err := t.remove(ctx, p); err != nil {
			errs = append(errs, err)
			continue
		}
		t.logf("unpinned %s (image %s, %s): not in the list", p.Ref, p.ImageID, p.Name)
	}
	return errors.Join(append([]error{pinErr}, errs...)...)
}
