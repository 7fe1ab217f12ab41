package examples

import (
	"bytes"
	"flag"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/dockerinit/dockerinit/bootimage"
	"github.com/dockerinit/dockerinit/bootloader"
	"github.com/dockerinit/dockerinit/bootparam"
	"github.com/dockerinit/dockerinit/toplayer"
)

var update = flag.Bool("update", false, "rewrite the entries/ files below their header comment from what mkbootimg prints now")

// tutorialOptions is the original tutorial's kernel command line, which the examples keep.
const tutorialOptions = "root=LABEL=linux rootflags=subvol=docker_rwlayer rw docker_path=docker toplayer=LABEL=linux toplayer_path=boot_docker"

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// schemaKeys lists the dotted keys of bootparam.Config from its toml tags.
func schemaKeys(typ reflect.Type, prefix string) []string {
	var keys []string
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if f.Type.Kind() == reflect.Struct {
			keys = append(keys, schemaKeys(f.Type, prefix+name+".")...)
			continue
		}
		keys = append(keys, prefix+name)
	}
	return keys
}

func TestConfigHasEveryKey(t *testing.T) {
	text := readFile(t, "dockerinit.toml")
	if _, err := bootparam.DecodeConfig([]byte(text)); err != nil {
		t.Fatalf("dockerinit.toml does not decode as dockerinit reads it: %v", err)
	}
	md, err := toml.Decode(text, new(map[string]any))
	if err != nil {
		t.Fatal(err)
	}
	keys := schemaKeys(reflect.TypeFor[bootparam.Config](), "")
	if len(keys) < 10 {
		t.Fatalf("found only keys %v in bootparam.Config: the walk over its toml tags is broken", keys)
	}
	lines := strings.Split(text, "\n")
	for _, k := range keys {
		if !md.IsDefined(strings.Split(k, ".")...) {
			t.Errorf("dockerinit.toml lacks %s, a key of bootparam.Config: add it with its default and a comment", k)
			continue
		}
		// The key's line is the first "name =" after its table header; a comment line must precede it.
		table, name := "", k
		if i := strings.LastIndexByte(k, '.'); i >= 0 {
			table, name = k[:i], k[i+1:]
		}
		keyLine := regexp.MustCompile(`^\s*` + regexp.QuoteMeta(name) + `\s*=`)
		inTable := table == ""
		for i, l := range lines {
			if strings.HasPrefix(strings.TrimSpace(l), "[") {
				inTable = strings.TrimSpace(l) == "["+table+"]"
				continue
			}
			if inTable && keyLine.MatchString(l) {
				if i == 0 || !strings.HasPrefix(strings.TrimSpace(lines[i-1]), "#") {
					t.Errorf("dockerinit.toml line %d (%s): no comment line above it saying what it does", i+1, k)
				}
				break
			}
		}
	}
}

// TestConfigLayout checks that the example boots the tutorial's layout with the defaults.
func TestConfigLayout(t *testing.T) {
	cfg, err := bootparam.DecodeConfig([]byte(readFile(t, "dockerinit.toml")))
	if err != nil {
		t.Fatal(err)
	}
	p, err := bootparam.Resolve(cfg, "", "")
	if err != nil {
		t.Fatalf("dockerinit.toml alone does not boot: %v", err)
	}
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"image", p.Image, "desktop:latest"},
		{"root device", p.Root.Device, "LABEL=linux"},
		{"root fstype", p.Root.FSType, ""}, // detected at boot
		{"root flags", p.Root.Flags, ""},
		{"docker path", p.DockerPath, "docker"},
		{"rw layer", p.RWLayer, "docker_rwlayer"},
		{"top layer device", p.TopLayer.Device, "LABEL=linux"},
		{"top layer path", p.TopLayer.Path, "boot_docker"},
		{"top layer required", p.TopLayer.Required, false},
		{"init", p.Init, bootparam.DefaultInit},
		{"timeout", p.Timeout, bootparam.DefaultTimeout},
		{"debug", p.Debug, false},
		{"rescue password", cfg.Rescue.PasswordHash, ""},
	} {
		if c.got != c.want {
			t.Errorf("dockerinit.toml gives %s %v, want %v (the tutorial's layout, else the default)", c.what, c.got, c.want)
		}
	}
}

// splitHeader cuts an entries/ file into its header comment (up to the first empty line) and
// the body that mkbootimg prints.
func splitHeader(t *testing.T, name, text string) (header, body string) {
	t.Helper()
	header, body, ok := strings.Cut(text, "\n\n")
	if !ok || !strings.HasPrefix(header, "#") {
		t.Fatalf("%s: want a header of # lines naming the mkbootimg invocation, an empty line, then its output", name)
	}
	for _, l := range strings.Split(header, "\n") {
		if !strings.HasPrefix(l, "#") {
			t.Fatalf("%s: header line %q is not a comment", name, l)
		}
	}
	return header + "\n\n", body
}

// mounts is the mount table the documented invocations assume.
var mounts = []struct {
	dir string
	vol bootloader.Volume
}{
	{"/mnt/linux", bootloader.Volume{FSType: "btrfs", Label: "linux", UUID: "0b7e1c2a-6d3f-4c1e-9a55-3f0e2d1c4b5a"}}, // top level
	{"/boot/efi", bootloader.Volume{FSType: "vfat", Label: "ESP", UUID: "B2FA-BC61"}},
}

// mkbootimgEntry is what `mkbootimg entry ARGS` prints, run in the checkout with the mounts
// above: the steps of cmd/mkbootimg's runEntry through the packages it calls.
func mkbootimgEntry(t *testing.T, args []string) string {
	t.Helper()
	fl := flag.NewFlagSet("entry", flag.ContinueOnError)
	kindName := fl.String("bootloader", "", "")
	config := fl.String("config", "", "")
	image := fl.String("image", "", "")
	volume := fl.String("volume", "", "")
	dir := fl.String("dir", "", "")
	if err := fl.Parse(args); err != nil || fl.NArg() > 0 {
		t.Fatalf("mkbootimg entry %s: the test knows only --bootloader --config --image --volume --dir (%v)", strings.Join(args, " "), err)
	}
	kind, err := bootloader.ParseKind(*kindName)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := bootparam.DecodeConfig([]byte(readFile(t, filepath.Join("..", *config)))) // run in the checkout
	if err != nil {
		t.Fatal(err)
	}
	cfg.Image = *image // --image overrides the file's image
	cmdline := bootimage.Cmdline(cfg, "")
	if _, err := bootparam.Resolve(cfg, "", cmdline); err != nil {
		t.Fatalf("the entry would not boot: %v", err)
	}

	var vol bootloader.Volume
	rel := ""
	for _, m := range mounts {
		if r, ok := strings.CutPrefix(*dir, m.dir+"/"); ok {
			vol, rel = m.vol, "/"+r
		}
	}
	switch {
	case rel == "":
		t.Fatalf("--dir %s is on none of the mounts the examples assume", *dir)
	case kind == bootloader.SystemdBoot:
		if vol.FSType != "vfat" {
			t.Fatalf("--dir %s: systemd-boot needs a directory on the ESP", *dir)
		}
		vol = bootloader.Volume{} // the ESP it runs from
	case *volume != "":
		fstype := vol.FSType
		if l, ok := strings.CutPrefix(*volume, "LABEL="); ok {
			vol = bootloader.Volume{Label: l}
		} else if u, ok := strings.CutPrefix(*volume, "UUID="); ok {
			vol = bootloader.Volume{UUID: u}
		} else {
			t.Fatalf("--volume %s: want LABEL= or UUID=", *volume)
		}
		vol.FSType = fstype
	}

	e, err := bootloader.ImageEntry(*image, vol, rel, cmdline)
	if err != nil {
		t.Fatal(err)
	}
	text, err := bootloader.Render(kind, e)
	if err != nil {
		t.Fatal(err)
	}
	if kind == bootloader.SystemdBoot {
		text = "# ESP/loader/entries/" + e.ID + ".conf\n" + text // runEntry names the file to write
	}
	return text
}

func TestEntries(t *testing.T) {
	for _, tc := range []struct {
		file  string
		parse func(string) ([]bootloader.Entry, error)
	}{
		{"entries/refind.conf", bootloader.ParseRefind},
		{"entries/custom.cfg", bootloader.ParseGRUB},
		{"entries/dockerinit-desktop-latest.conf", func(s string) ([]bootloader.Entry, error) {
			e, err := bootloader.ParseBLS("dockerinit-desktop-latest", s)
			return []bootloader.Entry{e}, err
		}},
	} {
		t.Run(path.Base(tc.file), func(t *testing.T) {
			header, body := splitHeader(t, tc.file, readFile(t, tc.file))
			_, invocation, ok := strings.Cut(header, "mkbootimg entry ")
			if !ok {
				t.Fatalf("%s: the header does not name the `mkbootimg entry ...` invocation", tc.file)
			}
			invocation, _, _ = strings.Cut(invocation, "\n")
			want := mkbootimgEntry(t, strings.Fields(invocation))
			if *update {
				if err := os.WriteFile(tc.file, []byte(header+want), 0o644); err != nil {
					t.Fatal(err)
				}
				body = want
			}
			if body != want {
				t.Errorf("%s differs from what `mkbootimg entry %s` prints now (go test ./examples/ -update rewrites it):\n--- file\n%s--- mkbootimg\n%s",
					tc.file, invocation, body, want)
			}
			entries, err := tc.parse(body)
			if err != nil || len(entries) != 1 {
				t.Fatalf("%s: %d entries, %v; want the one entry", tc.file, len(entries), err)
			}
			e := entries[0]
			if e.Title != "dockerinit desktop:latest" || e.Cmdline != tutorialOptions+" docker_image=desktop" {
				t.Errorf("%s: entry %q boots %q\nwant entry \"dockerinit desktop:latest\" booting the tutorial's options plus docker_image=desktop", tc.file, e.Title, e.Cmdline)
			}
			if !strings.HasSuffix(e.Kernel, "/vmlinuz") || !strings.HasSuffix(e.Initrd, "/initramfs.img") {
				t.Errorf("%s: kernel %q, initrd %q; want mkbootimg's vmlinuz and initramfs.img", tc.file, e.Kernel, e.Initrd)
			}
		})
	}
}

// TestTopLayer lays the example top layer over a merged-/usr image as the boot does.
func TestTopLayer(t *testing.T) {
	const src = "toplayer/boot_docker"
	root := t.TempDir()
	links := map[string]string{"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}
	for _, d := range []string{"usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	image := map[string]string{
		"etc/hostname": "debian-base\n",
		"etc/fstab":    "# UNCONFIGURED FSTAB FOR BASE SYSTEM\n",
		"etc/shadow":   "root::19000:0:99999:7:::\n",
		"usr/bin/true": "#!/bin/sh\n",
	}
	for name, content := range image {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	top, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range top {
		if _, ok := links[e.Name()]; ok || strings.HasPrefix(e.Name(), "lib") {
			t.Errorf("%s/%s: a directory there replaces the image's merged-/usr symlink %s and everything it leads to; put files under usr/ instead", src, e.Name(), e.Name())
		}
	}

	stats, err := toplayer.Apply(src, root)
	if err != nil {
		t.Fatal(err)
	}
	if len(stats.ReplacedLinks) > 0 {
		t.Errorf("applying %s replaced the image's symlinks %v", src, stats.ReplacedLinks)
	}
	for name, target := range links {
		if got, err := os.Readlink(filepath.Join(root, name)); err != nil || got != target {
			t.Errorf("after the top layer /%s is %q (%v), want the symlink -> %s", name, got, err, target)
		}
	}
	files := 0
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		files++
		rel, _ := filepath.Rel(src, p)
		want, _ := os.ReadFile(p)
		if got, err := os.ReadFile(filepath.Join(root, rel)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("booted /%s = %q (%v), want the top layer's %q", rel, got, err, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Files != files {
		t.Errorf("Apply copied %d files, the example has %d", stats.Files, files)
	}
	if got := readFile(t, filepath.Join(root, "etc/hostname")); got != "desktop-1\n" {
		t.Errorf("booted /etc/hostname = %q, want the example's desktop-1", got)
	}
	// The example leaves the image's own files alone: shadow above all (see examples/README.md).
	for _, name := range []string{"etc/shadow", "usr/bin/true"} {
		if got := readFile(t, filepath.Join(root, name)); got != image[name] {
			t.Errorf("booted /%s = %q, want the image's %q untouched", name, got, image[name])
		}
	}
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int    // of its first line, from 1
	cmd  string // upper-cased: FROM, RUN, COPY...
	args string
}

// parseDockerfile splits a Dockerfile into instructions the simple way: comment lines dropped
// (inside continuations too, as Docker does), a trailing backslash continues the line.
func parseDockerfile(text string) []instruction {
	var (
		out []instruction
		cur *instruction
	)
	for i, line := range strings.Split(text, "\n") {
		l := strings.TrimSpace(line)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		body, more := strings.CutSuffix(l, `\`)
		body = strings.TrimSpace(body)
		switch {
		case cur != nil:
			cur.args = strings.TrimSpace(cur.args + " " + body)
		case body != "":
			cmd := strings.Fields(body)[0]
			cur = &instruction{line: i + 1, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(body[len(cmd):])}
		default: // a lone backslash: nothing to continue
			continue
		}
		if !more {
			out = append(out, *cur)
			cur = nil
		}
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out
}

var (
	shellSeparators = strings.NewReplacer("&&", ";", "||", ";", "|", ";")
	pacmanSync      = regexp.MustCompile(`^-S[a-z]*$`) // -S, -Sy, -Syu: install
)

// installs lists the packages a RUN installs with apt-get/apt/dnf install or pacman -S.
func installs(run string) []string {
	var pkgs []string
	for _, cmd := range strings.Split(shellSeparators.Replace(run), ";") {
		words := strings.Fields(cmd)
		for len(words) > 0 && strings.Contains(words[0], "=") { // VAR=value before the command
			words = words[1:]
		}
		if len(words) < 2 {
			continue
		}
		args := words[1:]
		switch words[0] {
		case "apt-get", "apt", "dnf":
			i := slices.IndexFunc(args, func(w string) bool { return !strings.HasPrefix(w, "-") })
			if i < 0 || args[i] != "install" {
				continue
			}
			args = args[i+1:]
		case "pacman":
			if !slices.ContainsFunc(args, pacmanSync.MatchString) {
				continue
			}
		default:
			continue
		}
		for _, a := range args {
			if !strings.HasPrefix(a, "-") {
				pkgs = append(pkgs, a)
			}
		}
	}
	return pkgs
}

// pathDirs are the directories of $PATH every distribution's root shell has.
var pathDirs = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

func TestDockerfiles(t *testing.T) {
	for _, tc := range []struct {
		distro, from, kernel, init string
		login, noInitramfs         string // what a RUN must hold
	}{
		{"debian", "debian:", "linux-image-amd64", "systemd-sysv", "passwd -d root", "rm -f /boot/initrd.img-*"},
		{"arch", "archlinux:", "linux", "systemd-sysvcompat", "passwd -d root", "/etc/pacman.d/hooks/90-mkinitcpio-install.hook"},
		{"fedora", "fedora:", "kernel-core", "systemd", "chpasswd", "/etc/kernel/install.d/50-dracut.install"},
	} {
		t.Run(tc.distro, func(t *testing.T) {
			name := tc.distro + "/Dockerfile"
			text := readFile(t, name)
			lines := strings.Split(text, "\n")
			build := "docker build -t desktop -f examples/" + name + " bin/"
			if !strings.Contains(text, "# Build context: the checkout's bin/") || !strings.Contains(text, build) {
				t.Errorf("%s: the header must say its build context, bin/, and the command %q", name, build)
			}
			ins := parseDockerfile(text)
			if len(ins) == 0 || ins[0].cmd != "FROM" || !strings.HasPrefix(ins[0].args, tc.from) {
				t.Fatalf("%s: first instruction %+v, want FROM %s...", name, ins[:min(1, len(ins))], tc.from)
			}
			var pkgs, runs []string
			copied := false
			for _, in := range ins {
				if in.line < 2 || !strings.HasPrefix(strings.TrimSpace(lines[in.line-2]), "#") {
					t.Errorf("%s line %d: %s has no comment above it saying why", name, in.line, in.cmd)
				}
				switch in.cmd {
				case "RUN":
					runs = append(runs, in.args)
					pkgs = append(pkgs, installs(in.args)...)
				case "COPY":
					// bin/ is the context: its dockerinit goes into a $PATH directory.
					f := slices.DeleteFunc(strings.Fields(in.args), func(w string) bool { return strings.HasPrefix(w, "--") })
					if len(f) == 2 && f[0] == "dockerinit" &&
						(slices.Contains(pathDirs, strings.TrimSuffix(f[1], "/")) ||
							(path.Base(f[1]) == "dockerinit" && slices.Contains(pathDirs, path.Dir(f[1])))) {
						copied = true
					}
				}
			}
			for _, want := range []string{tc.kernel, tc.init} {
				if !slices.Contains(pkgs, want) {
					t.Errorf("%s installs %v, want %s among them", name, pkgs, want)
				}
			}
			if !copied {
				t.Errorf("%s: no `COPY dockerinit DIR/dockerinit` into one of %v, for `dockerinit status`", name, pathDirs)
			}
			for _, want := range []string{tc.login, tc.noInitramfs} {
				if !slices.ContainsFunc(runs, func(r string) bool { return strings.Contains(r, want) }) {
					t.Errorf("%s: no RUN holds %q", name, want)
				}
			}
		})
	}
}

func TestParseDockerfile(t *testing.T) {
	text := "# header\nFROM debian:bookworm\n\n# why\nRUN apt-get update \\\n # a comment inside\n && DEBIAN_FRONTEND=noninteractive apt-get install -y a \\\n      b\nRUN pacman -Syu --noconfirm c d && pacman -Scc\nrun dnf -y install e | tee log\nCOPY --chown=0:0 dockerinit /usr/local/sbin/\n"
	got := parseDockerfile(text)
	want := []instruction{
		{2, "FROM", "debian:bookworm"},
		{5, "RUN", "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y a b"},
		{9, "RUN", "pacman -Syu --noconfirm c d && pacman -Scc"},
		{10, "RUN", "dnf -y install e | tee log"},
		{11, "COPY", "--chown=0:0 dockerinit /usr/local/sbin/"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseDockerfile =\n%+v\nwant\n%+v", got, want)
	}
	for _, tc := range []struct {
		run  string
		want []string
	}{
		{got[1].args, []string{"a", "b"}},
		{got[2].args, []string{"c", "d"}},
		{got[3].args, []string{"e"}},
		{"apt-get update; apt-get -y upgrade", nil},
		{"echo apt-get install x", nil},
	} {
		if g := installs(tc.run); !slices.Equal(g, tc.want) {
			t.Errorf("installs(%q) = %v, want %v", tc.run, g, tc.want)
		}
	}
}

func FuzzParseDockerfile(f *testing.F) {
	for _, d := range []string{"debian", "arch", "fedora"} {
		b, err := os.ReadFile(d + "/Dockerfile")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("RUN \\\n\\\n#\nx")
	f.Fuzz(func(t *testing.T, text string) {
		for _, in := range parseDockerfile(text) {
			if in.cmd == "" || in.line < 1 || strings.Contains(in.args, "\n") {
				t.Fatalf("bad instruction %+v", in)
			}
			installs(in.args)
		}
	})
}

// githubSlug is the anchor GitHub gives a Markdown heading.
func githubSlug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestReadme checks the index: its links lead somewhere, and it names every example file.
func TestReadme(t *testing.T) {
	text := readFile(t, "README.md")
	links := regexp.MustCompile(`\]\(([^)]+)\)`).FindAllStringSubmatch(text, -1)
	linked := map[string]bool{}
	for _, m := range links {
		target, anchor, _ := strings.Cut(m[1], "#")
		if strings.Contains(target, "://") {
			continue
		}
		linked[path.Clean(target)] = true
		if _, err := os.Stat(target); err != nil {
			t.Errorf("README.md links to %s, which does not exist", m[1])
			continue
		}
		if anchor == "" {
			continue
		}
		var slugs []string
		for _, l := range strings.Split(readFile(t, target), "\n") {
			if h, ok := strings.CutPrefix(l, "#"); ok {
				slugs = append(slugs, githubSlug(strings.TrimSpace(strings.TrimLeft(h, "#"))))
			}
		}
		if !slices.Contains(slugs, anchor) {
			t.Errorf("README.md links to %s, but %s has no such heading", m[1], target)
		}
	}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == "README.md" || p == "doc.go" || strings.HasSuffix(p, "_test.go") || strings.HasPrefix(p, "testdata") {
			return err
		}
		for dir := p; dir != "."; dir = path.Dir(dir) {
			if linked[dir] {
				return nil
			}
		}
		t.Errorf("README.md does not link %s or a folder holding it: say what it is for", p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
