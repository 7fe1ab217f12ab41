package bootparam

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/dockerinit/dockerinit/blockdev"
)

// Defaults for what neither the command line nor the configuration gives.
const (
	DefaultDockerPath = "var/lib/docker"
	DefaultNamespace  = "moby" // Docker's containerd namespace
	DefaultInit       = "/sbin/init"
	DefaultTimeout    = 30 * time.Second
)

// Params is everything dockerinit needs to boot, merged and validated.
type Params struct {
	Image   string   // image reference to boot, never empty after Resolve: the first of Images
	Images  []string // docker_image=new,good: the images to try in order; one for a plain boot
	Tries   int      // boot counting: tries an image gets before the next boots; 0: none
	Root    Mount    // the file system holding the store; Flags are rootflags without subvol= and subvolid=
	RWLayer string   // the rw layer (subvol= of rootflags), relative to the file system's top (btrfs: its top level)
	// RWLayerInRootflags: the kernel command line's rootflags= names the rw layer (subvol=), so
	// another initramfs that mounts root= itself passes subvol= on to the file system.
	RWLayerInRootflags bool
	ReadOnly           bool     // "ro" given (default rw)
	DockerPath         string   // the image store's folder relative to the file system's top, cleaned, no leading '/'
	Namespace          string   // containerd namespace of the image, for containerd stores
	TopLayer           TopLayer // Path empty = no top layer
	Init               string   // absolute path of init inside the new root
	InitArgs           []string // command line words after a lone "--", for init
	Timeout            time.Duration
	Rescue             bool
	Debug              bool
	Warnings           []string // non-fatal oddities worth logging
}

// Mount is a file system to mount.
type Mount struct {
	Device string        // "LABEL=linux", "UUID=...", "PARTUUID=...", "/dev/sda2", ... as given
	Spec   blockdev.Spec // Device parsed; zero when Device is empty
	FSType string        // empty = detect
	Flags  string        // mount data, comma separated
}

// TopLayer is the per-machine folder laid over the new root.
type TopLayer struct {
	Mount
	Path     string // folder on Device, relative to its root, cleaned; "." = the whole device; empty = none
	Required bool   // fail the boot if the top layer cannot be applied
}

// ParamError is one invalid or missing boot parameter.
type ParamError struct {
	Key    string // as the user writes it: "rootflags=subvol", "docker_path", "root.rwlayer", ...
	Value  string
	Source string // "kernel command line", ConfigPath, LegacyPath; empty when nothing was given
	Reason string // what is wrong
	Fix    string // what to change
}

func (e *ParamError) Error() string {
	if e.Source == "" {
		return fmt.Sprintf("boot parameter %s: %s; fix: %s", e.Key, e.Reason, e.Fix)
	}
	return fmt.Sprintf("boot parameter %s=%q (from %s): %s; fix: %s", e.Key, e.Value, e.Source, e.Reason, e.Fix)
}

const fromCmdline = "kernel command line"

// knownDockerinit are the dockerinit.* command line keys; others get a warning.
var knownDockerinit = []string{"dockerinit.timeout", "dockerinit.rescue", "dockerinit.debug", "dockerinit.namespace", "dockerinit.tries"}

// RootFSTypes are the file systems an image store may be on: btrfs for every store, ext4 and xfs
// for the overlay ones.
var RootFSTypes = []string{"btrfs", "ext4", "xfs"}

// Resolve merges the kernel command line, dockerinit.toml (cfg) and the
// image named by the legacy /etc/docker-btrfs.json (legacyImage, may be
// empty), in that order of precedence, over the defaults. On the command
// line an empty value (toplayer_path=) resets a setting to its default,
// which is how a boot entry turns off a configured top layer.
//
// Every problem is reported at once, joined; each is a *ParamError. Even
// then the returned Params holds what could be resolved (Debug and Rescue
// in particular) so that the caller can still honour them.
func Resolve(cfg Config, legacyImage string, cmdline string) (Params, error) {
	r := resolver{cmd: ParseCmdline(cmdline)}
	p := Params{InitArgs: r.cmd.Init}
	p.Debug = r.flag("dockerinit.debug", cfg.Boot.Debug)
	p.Rescue = r.flag("dockerinit.rescue", false)
	p.Images = r.images(cfg.Image, legacyImage)
	if len(p.Images) > 0 {
		p.Image = p.Images[0]
	}
	p.Tries = r.tries(cfg.Boot.Tries, len(p.Images))

	root := r.pick("root", "root.device", cfg.Root.Device)
	if root.value == "" {
		r.fail(root, "no root device is given",
			"add root=LABEL=<label of the btrfs partition> (or UUID=, PARTUUID=, /dev/...) to the kernel command line, or device under [root] in "+ConfigPath)
	}
	fstype := r.pick("rootfstype", "root.fstype", cfg.Root.FSType)
	if fstype.value != "" && !slices.Contains(RootFSTypes, fstype.value) {
		r.fail(fstype, "the image store's file system must be one of "+strings.Join(RootFSTypes, ", "),
			"give rootfstype=btrfs, ext4 or xfs, or leave it out: the type is detected")
	}
	p.Root = Mount{Device: root.value, FSType: fstype.value, Spec: r.device(root)}
	p.ReadOnly = r.readOnly()

	flags := r.pick("rootflags", "root.flags", cfg.Root.Flags)
	var rw setting
	p.Root.Flags, rw = r.splitRootflags(flags)
	if rw.source == "" {
		rw = r.pick("", "root.rwlayer", cfg.Root.RWLayer)
	}
	rwFix := "name the rw layer at the top of the file system, beside the image store: rootflags=subvol=docker_rwlayer"
	if rw.value == "" {
		rw.key = "rootflags=subvol"
		r.fail(rw, "no subvol= names the rw layer, the subvolume recreated from the image at every boot",
			"add rootflags=subvol=docker_rwlayer to the kernel command line (or rwlayer under [root] in "+ConfigPath+")")
	} else if strings.ContainsFunc(rw.value, badSubvolRune) {
		// It becomes subvol=<name> in a mount option string, where a comma starts another
		// option: "rw,subvol=docker/btrfs/subvolumes/<id>" would mount an image layer as /.
		r.fail(rw, "the rw layer name must not contain a comma, white space or control characters: it is passed to mount as subvol=NAME",
			"name the rw layer with letters, digits, '_', '-', '.' and '/' only, e.g. docker_rwlayer")
	} else {
		p.RWLayer = r.relPath(rw, "the rw layer", rwFix)
		p.RWLayerInRootflags = rw.source == fromCmdline && rw.key == "rootflags=subvol"
	}

	docker := r.pick("docker_path", "root.docker_path", cfg.Root.DockerPath)
	if docker.value == "" {
		p.DockerPath = DefaultDockerPath
	} else {
		p.DockerPath = r.relPath(docker, "the Docker root", "give the Docker data root relative to the btrfs top level, e.g. docker_path=var/lib/docker")
	}
	switch {
	case p.RWLayer == "" || p.DockerPath == "":
		// already reported
	case within(p.RWLayer, p.DockerPath):
		r.fail(rw, fmt.Sprintf("the rw layer is the Docker root %q or inside it: recreating it at every boot would destroy the images", p.DockerPath), rwFix)
	case within(p.DockerPath, p.RWLayer):
		r.fail(rw, fmt.Sprintf("the Docker root %q is inside the rw layer, which is deleted at every boot", p.DockerPath), rwFix)
	}

	ns := r.pick("dockerinit.namespace", "root.namespace", cfg.Root.Namespace)
	p.Namespace = ns.or(DefaultNamespace)
	if !validNamespace(p.Namespace) {
		r.fail(ns, "a containerd namespace is letters and digits, joined by single '.', '_' or '-', at most 76 characters",
			"give the namespace ctr lists (ctr namespaces ls), e.g. dockerinit.namespace=moby (Docker's), k8s.io or default")
	}

	p.TopLayer = r.topLayer(cfg.TopLayer, p.Root)

	initPath := r.pick("init", "boot.init", cfg.Boot.Init)
	p.Init = initPath.or(DefaultInit)
	if !strings.HasPrefix(p.Init, "/") {
		r.fail(initPath, "init must be an absolute path inside the image",
			"give e.g. init=/sbin/init or init=/lib/systemd/systemd")
	}

	p.Timeout = DefaultTimeout
	if t := r.pick("dockerinit.timeout", "boot.timeout", cfg.Boot.Timeout); t.value != "" {
		if d, err := ParseTimeout(t.value); err != nil {
			r.fail(t, err.Error(), "give a duration like dockerinit.timeout=30s, 2m or bare seconds 45")
		} else {
			p.Timeout = d
		}
	}

	r.warnUnknown()
	p.Warnings = r.warnings
	return p, errors.Join(r.errs...)
}

// setting is one value with where it came from.
type setting struct {
	key, value, source string
}

// or returns the value, or def when there is none.
func (s setting) or(def string) string {
	if s.value == "" {
		return def
	}
	return s.value
}

type resolver struct {
	cmd      Cmdline
	errs     []error
	warnings []string
}

func (r *resolver) fail(s setting, reason, fix string) {
	r.errs = append(r.errs, &ParamError{Key: s.key, Value: s.value, Source: s.source, Reason: reason, Fix: fix})
}

func (r *resolver) warn(format string, args ...any) {
	r.warnings = append(r.warnings, fmt.Sprintf(format, args...))
}

// pick returns the command line value of cmdKey when given there (even
// empty), else the TOML value when not empty, else nothing (keyed cmdKey so
// that errors name what to add).
func (r *resolver) pick(cmdKey, tomlKey, tomlValue string) setting {
	if p, ok := r.cmd.Lookup(cmdKey); ok {
		return setting{key: cmdKey, value: p.Value, source: fromCmdline}
	}
	if tomlValue != "" {
		return setting{key: tomlKey, value: tomlValue, source: ConfigPath}
	}
	if cmdKey == "" {
		cmdKey = tomlKey
	}
	return setting{key: cmdKey}
}

// flag reads a boolean command line key: a bare word is true, and so are
// 1/yes/true/on; 0/no/false/off are false.
func (r *resolver) flag(key string, def bool) bool {
	p, ok := r.cmd.Lookup(key)
	if !ok {
		return def
	}
	if !p.HasValue {
		return true
	}
	switch strings.ToLower(p.Value) {
	case "", "1", "y", "yes", "true", "on":
		return true
	case "0", "n", "no", "false", "off":
		return false
	}
	r.fail(setting{key: key, value: p.Value, source: fromCmdline}, "not a boolean",
		"write "+key+" alone to turn it on, or "+key+"=0 to turn it off")
	return def
}

// readOnly: of "ro" and "rw" the last one given wins; rw by default.
func (r *resolver) readOnly() bool {
	for _, p := range slices.Backward(r.cmd.Params) {
		if !p.HasValue && (p.Key == "ro" || p.Key == "rw") {
			return p.Key == "ro"
		}
	}
	return false
}

func (r *resolver) images(cfgImage, legacyImage string) []string {
	img := r.pick("docker_image", "image", cfgImage)
	if img.source == "" && legacyImage != "" {
		img = setting{key: "docker_image", value: legacyImage, source: LegacyPath}
		r.warn("image %q taken from the legacy %s; set image in %s instead (mkbootimg --image)", legacyImage, LegacyPath, ConfigPath)
	}
	switch {
	case img.value == "":
		r.fail(img, "no image to boot is given",
			"pass docker_image=NAME[:TAG] on the kernel command line, or rebuild the initramfs with mkbootimg --image NAME[:TAG]")
		return nil
	case strings.ContainsAny(img.value, spaces):
		r.fail(img, "the image reference contains white space", "give a reference like desktop:latest or an image ID sha256:<hex>")
		return nil
	}
	// A comma cannot be in a reference: it separates the images to try in order.
	refs := strings.Split(img.value, ",")
	for i, ref := range refs {
		switch {
		case ref == "":
			r.fail(img, "an image of the list is empty", "list references separated by single commas: docker_image=desktop:new,desktop:good")
			return nil
		case slices.Contains(refs[:i], ref):
			r.fail(img, fmt.Sprintf("image %q is listed twice", ref), "list each image once, the one to try first first")
			return nil
		}
	}
	if len(refs) > MaxImages {
		r.fail(img, fmt.Sprintf("%d images are listed; at most %d", len(refs), MaxImages), "list the new image and a few known-good ones")
		return nil
	}
	return refs
}

// MaxTries and MaxImages bound boot counting: more would only make a broken machine loop longer.
const (
	MaxTries  = 100
	MaxImages = 16
)

// tries is the number of boots an image of the list gets before the next one boots.
func (r *resolver) tries(cfgTries, images int) int {
	def := ""
	if cfgTries != 0 {
		def = strconv.Itoa(cfgTries)
	}
	t := r.pick("dockerinit.tries", "boot.tries", def)
	if t.value == "" {
		return 0
	}
	n, err := strconv.Atoi(t.value)
	if err != nil || n < 0 || n > MaxTries {
		r.fail(t, fmt.Sprintf("tries must be a number from 0 (no boot counting) to %d", MaxTries), "give e.g. dockerinit.tries=3")
		return 0
	}
	if n > 0 && images == 1 {
		r.warn("dockerinit.tries=%d with one image: the image is counted, but there is nothing to fall back to (list more: docker_image=new,good)", n)
	}
	return n
}

// splitRootflags splits subvol= out of the rootflags and drops subvolid=;
// the other options are kept in order. The returned setting holds the
// subvol= value, or nothing when there is none.
func (r *resolver) splitRootflags(flags setting) (string, setting) {
	var opts []string
	var rw setting
	for o := range strings.SplitSeq(flags.value, ",") {
		name, value, _ := strings.Cut(o, "=")
		switch name {
		case "":
		case "subvol":
			rw = setting{key: flags.key + "=subvol", value: value, source: flags.source}
		case "subvolid":
			r.warn("%s %s ignored: the rw layer is recreated at every boot, so only subvol= can name it", flags.key, o)
		default:
			opts = append(opts, o)
		}
	}
	return strings.Join(opts, ","), rw
}

// relPath validates a path relative to the btrfs top level: a leading '/'
// is allowed and removed, ".." is refused, and so is nothing.
func (r *resolver) relPath(s setting, what, fix string) string {
	v := strings.TrimLeft(s.value, "/")
	if slices.Contains(strings.Split(v, "/"), "..") {
		r.fail(s, what+` must not contain ".."`, fix)
		return ""
	}
	v = path.Clean(v)
	if v == "." {
		r.fail(s, what+" is empty: it cannot be the btrfs top level itself", fix)
		return ""
	}
	return v
}

// device parses a device setting once, here, so that a malformed one is reported with the other
// parameter problems, at boot and by mkbootimg's check; empty stays the zero Spec.
func (r *resolver) device(s setting) blockdev.Spec {
	if s.value == "" {
		return blockdev.Spec{}
	}
	sp, err := blockdev.ParseSpec(s.value)
	if err != nil {
		r.fail(s, err.Error(), "name the device as blkid prints it")
	}
	return sp
}

// validNamespace checks a containerd namespace as containerd's identifiers package does.
func validNamespace(s string) bool {
	if s == "" || len(s) > 76 {
		return false
	}
	prevSep := true // no separator first
	for _, c := range s {
		sep := c == '.' || c == '_' || c == '-'
		if sep && prevSep || !sep && !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
		prevSep = sep
	}
	return !prevSep
}

// badSubvolRune reports a character a subvolume name cannot carry through mount options.
func badSubvolRune(c rune) bool { return c == ',' || unicode.IsSpace(c) || unicode.IsControl(c) }

// within reports whether p is dir or inside it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

func (r *resolver) topLayer(cfg TopLayerConfig, root Mount) TopLayer {
	dev := r.pick("toplayer", "toplayer.device", cfg.Device)
	dir := r.pick("toplayer_path", "toplayer.path", cfg.Path)
	t := TopLayer{
		Mount: Mount{
			Device: dev.value,
			FSType: r.pick("toplayerfstype", "toplayer.fstype", cfg.FSType).value,
			Flags:  r.pick("toplayerflags", "toplayer.flags", cfg.Flags).value,
		},
		Required: cfg.Required,
	}
	switch {
	case dir.value == "" && cfg.Required:
		r.fail(dir, "the top layer is required but no folder is given",
			"add toplayer_path=FOLDER (or path under [toplayer] in "+ConfigPath+"), or drop required")
	case dir.value == "" && dev.value != "":
		r.warn("%s=%s is given without a toplayer_path: no top layer is applied (toplayer_path=/ takes the whole device)", dev.key, dev.value)
	case dir.value == "":
	case strings.TrimLeft(dir.value, "/") == "":
		t.Path = "."
	default:
		t.Path = r.relPath(dir, "the top layer folder", "give the folder relative to the top layer device's root, e.g. toplayer_path=boot_docker")
	}
	t.Spec = r.device(dev)
	// Most machines keep the top layer on the root file system.
	if t.Path != "" && t.Device == "" {
		t.Device, t.Spec = root.Device, root.Spec
		if t.FSType == "" {
			t.FSType = root.FSType
		}
	}
	return t
}

// warnUnknown warns once about each dockerinit.* key it does not know:
// probably a typo the user wants to hear about.
func (r *resolver) warnUnknown() {
	var seen []string
	for _, p := range r.cmd.Params {
		if strings.HasPrefix(p.Key, "dockerinit.") && !slices.Contains(knownDockerinit, p.Key) && !slices.Contains(seen, p.Key) {
			seen = append(seen, p.Key)
			r.warn("unknown kernel parameter %s ignored; dockerinit knows %s", p.Key, strings.Join(knownDockerinit, ", "))
		}
	}
}

// ParseTimeout reads dockerinit.timeout= and boot.timeout: a Go duration ("30s", "1m30s") or bare
// seconds ("45"), positive. Exported so that mkbootimg checks its flag the same way.
func ParseTimeout(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if n, nerr := strconv.ParseUint(s, 10, 31); nerr == nil {
		d, err = time.Duration(n)*time.Second, nil
	}
	if err != nil {
		return 0, errors.New("not a duration")
	}
	if d <= 0 {
		return 0, errors.New("not a positive duration")
	}
	return d, nil
}
