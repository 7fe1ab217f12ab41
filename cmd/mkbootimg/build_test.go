package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/bootparam"
	"github.com/dockerinit/dockerinit/initramfs"
)

// `openssl passwd -6 -salt mkbootimg dockerinit` and `openssl passwd -5 ...`.
const (
	hash6 = "$6$mkbootimg$AbSFu/wAKqneTxySusXueRCAP/4C/qn4F7sKC9R/5A.J4rd/XegbPBcrRe3gaBKsdvattYY/w7CEVtuPl48d5."
	hash5 = "$5$mkbootimg$Pt1FLw3UbmEoeLQ2iEaz13A2kT.sHraIACTtkkAL0b8"
)

// parseBuildFlags parses args with the flags every building command has.
func parseBuildFlags(t *testing.T, args ...string) (*buildFlags, *flag.FlagSet, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	b := addBuildFlags(fs)
	return b, fs, fs.Parse(args)
}

// configKey is one leaf of bootparam.Config: its dotted TOML key and where it sits in the struct.
type configKey struct {
	name  string
	index []int
	kind  reflect.Kind
}

func configKeys() []configKey {
	var keys []configKey
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for f := range t.Fields() {
			tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			at := append(append([]int(nil), index...), f.Index...)
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, prefix+tag+".", at)
				continue
			}
			keys = append(keys, configKey{prefix + tag, at, f.Type.Kind()})
		}
	}
	walk(reflect.TypeFor[bootparam.Config](), "", nil)
	return keys
}

// TestEveryConfigKeyHasAFlag holds the contract "every key of dockerinit.toml is also settable by
// a flag": for each key of bootparam.Config it finds the build flag whose help names it
// ("(TOML key" as the others say) and checks that the flag sets that key of the embedded config.
func TestEveryConfigKeyHasAFlag(t *testing.T) {
	// Values that pass the checks of the keys that have some; any other string key takes "probe".
	valid := map[string]string{"boot.tries": "3", "boot.timeout": "45s", "boot.init": "/sbin/probe", "rescue.password_hash": hash6}
	_, fs, _ := parseBuildFlags(t)
	keys := configKeys()
	if len(keys) < 15 {
		t.Fatalf("found %d keys in bootparam.Config, want at least the 15 known ones: the walk is broken", len(keys))
	}
	for _, k := range keys {
		var names []string
		fs.VisitAll(func(f *flag.Flag) {
			if strings.Contains(f.Usage, "(TOML "+k.name+";") || strings.Contains(f.Usage, "(TOML "+k.name+")") {
				names = append(names, f.Name)
			}
		})
		if len(names) != 1 {
			t.Errorf("dockerinit.toml key %s: build flags naming it %q, want exactly one: add a flag in addBuildFlags "+
				"whose help ends in \"(TOML %s)\"", k.name, names, k.name)
			continue
		}
		value := "probe"
		if v, ok := valid[k.name]; ok {
			value = v
		}
		if k.kind == reflect.Bool {
			value = "true"
		}
		b, _, err := parseBuildFlags(t, "--"+names[0]+"="+value)
		if err != nil {
			t.Errorf("dockerinit.toml key %s: --%s=%s: %v (give the key a valid sample value in this test)", k.name, names[0], value, err)
			continue
		}
		cfg, err := b.config()
		if err != nil {
			t.Fatal(err)
		}
		got := reflect.ValueOf(cfg).FieldByIndex(k.index)
		if want := reflect.ValueOf(value == "true"); k.kind == reflect.Bool && !got.Equal(want) ||
			k.kind == reflect.String && got.String() != value ||
			k.kind == reflect.Int && fmt.Sprint(got.Int()) != value {
			t.Errorf("--%s=%s: the embedded %s is %v, want %s", names[0], value, k.name, got, value)
		}
	}
}

// TestBuildFlagsOverrideConfig checks that each key's flag replaces the --config file's value in
// the dockerinit.toml mkbootimg embeds, booleans both ways, and leaves the other keys alone.
func TestBuildFlagsOverrideConfig(t *testing.T) {
	dir := t.TempDir()
	file := bootparam.Config{
		Image:    "desktop:latest",
		Root:     bootparam.RootConfig{Device: "LABEL=linux", FSType: "btrfs", Flags: "compress=zstd", DockerPath: "docker", RWLayer: "docker_rwlayer"},
		TopLayer: bootparam.TopLayerConfig{Device: "LABEL=top", FSType: "ext4", Flags: "noatime", Path: "boot_docker", Required: true},
		Boot:     bootparam.BootConfig{Init: "/sbin/init", Timeout: "30s", Debug: true},
		Rescue:   bootparam.RescueConfig{PasswordHash: hash6},
	}
	data, err := file.Encode()
	if err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(dir, "full.toml")
	if err := os.WriteFile(full, data, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.toml")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		config string
		args   []string
		change func(*bootparam.Config) // what the flags change in the file's config
	}{
		{"the file alone", full, nil, func(*bootparam.Config) {}},
		{"--image", full, []string{"--image", "server:1"}, func(c *bootparam.Config) { c.Image = "server:1" }},
		{"--root", full, []string{"--root", "UUID=1234"}, func(c *bootparam.Config) { c.Root.Device = "UUID=1234" }},
		{"--root-fstype", full, []string{"--root-fstype", "btrfs2"}, func(c *bootparam.Config) { c.Root.FSType = "btrfs2" }},
		{"--root-flags", full, []string{"--root-flags", "compress=lzo,degraded"}, func(c *bootparam.Config) { c.Root.Flags = "compress=lzo,degraded" }},
		{"--docker-path", full, []string{"--docker-path", "var/lib/docker"}, func(c *bootparam.Config) { c.Root.DockerPath = "var/lib/docker" }},
		{"--rwlayer", full, []string{"--rwlayer", "rw2"}, func(c *bootparam.Config) { c.Root.RWLayer = "rw2" }},
		{"--toplayer", full, []string{"--toplayer", "PARTLABEL=top"}, func(c *bootparam.Config) { c.TopLayer.Device = "PARTLABEL=top" }},
		{"--toplayer-fstype", full, []string{"--toplayer-fstype", "vfat"}, func(c *bootparam.Config) { c.TopLayer.FSType = "vfat" }},
		{"--toplayer-flags", full, []string{"--toplayer-flags", "nodev"}, func(c *bootparam.Config) { c.TopLayer.Flags = "nodev" }},
		{"--toplayer-path", full, []string{"--toplayer-path", "top"}, func(c *bootparam.Config) { c.TopLayer.Path = "top" }},
		{"--toplayer-required=false over true", full, []string{"--toplayer-required=false"}, func(c *bootparam.Config) { c.TopLayer.Required = false }},
		{"--toplayer-required over an empty file", empty, []string{"--toplayer-required"}, func(c *bootparam.Config) { *c = bootparam.Config{}; c.TopLayer.Required = true }},
		{"--boot-init", full, []string{"--boot-init", "/lib/systemd/systemd"}, func(c *bootparam.Config) { c.Boot.Init = "/lib/systemd/systemd" }},
		{"--boot-timeout", full, []string{"--boot-timeout", "2m"}, func(c *bootparam.Config) { c.Boot.Timeout = "2m" }},
		{"--boot-timeout in bare seconds", full, []string{"--boot-timeout", "45"}, func(c *bootparam.Config) { c.Boot.Timeout = "45" }},
		{"--boot-debug=false over true", full, []string{"--boot-debug=false"}, func(c *bootparam.Config) { c.Boot.Debug = false }},
		{"--boot-debug over an empty file", empty, []string{"--boot-debug"}, func(c *bootparam.Config) { *c = bootparam.Config{}; c.Boot.Debug = true }},
		{"--rescue-password-hash $5$", full, []string{"--rescue-password-hash", hash5}, func(c *bootparam.Config) { c.Rescue.PasswordHash = hash5 }},
		{"flags without a file", "", []string{"--root", "LABEL=x", "--toplayer-required=false", "--boot-debug"},
			func(c *bootparam.Config) {
				*c = bootparam.Config{Root: bootparam.RootConfig{Device: "LABEL=x"}, Boot: bootparam.BootConfig{Debug: true}}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.config != "" {
				args = append([]string{"--config", tc.config}, args...)
			}
			b, _, err := parseBuildFlags(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			o, err := b.options(dir)
			if err != nil {
				t.Fatal(err)
			}
			want := file
			tc.change(&want)
			if o.Config != want {
				t.Errorf("embedded config\n%+v\nwant\n%+v", o.Config, want)
			}
			// What dockerinit reads back from the initramfs is what the flags said.
			data, err := o.Config.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if back, err := bootparam.DecodeConfig(data); err != nil || back != want {
				t.Errorf("the embedded dockerinit.toml reads back as %+v, %v; want %+v\n%s", back, err, want, data)
			}
		})
	}
}

// TestBuildFlagErrors checks that a bad value is refused with the flag's name and the fix.
func TestBuildFlagErrors(t *testing.T) {
	dir := t.TempDir()
	badFile := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(badFile, []byte("[boot]\ntimeout = \"soon\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"timeout not a duration", []string{"--boot-timeout", "soon"}, []string{"-boot-timeout", `"soon"`, "not a duration", "give e.g. 30s"}},
		{"timeout zero", []string{"--boot-timeout", "0s"}, []string{"-boot-timeout", "not a positive duration"}},
		{"timeout empty", []string{"--boot-timeout="}, []string{"-boot-timeout", "not a duration"}},
		{"hash not SHA-crypt", []string{"--rescue-password-hash", "secret"}, []string{"-rescue-password-hash", "does not start with $5$ or $6$", "openssl passwd -6"}},
		{"hash yescrypt", []string{"--rescue-password-hash", "$y$j9T$salt$digest"}, []string{"-rescue-password-hash", "only $5$ and $6$"}},
		{"hash truncated", []string{"--rescue-password-hash", hash6[:40]}, []string{"-rescue-password-hash", "digest"}},
		{"bool not a bool", []string{"--toplayer-required=maybe"}, []string{"-toplayer-required", "want true or false"}},
		{"bad timeout in --config", []string{"--config", badFile}, []string{"--config " + badFile, "boot.timeout", "not a duration"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _, err := parseBuildFlags(t, tc.args...)
			if err == nil {
				_, err = b.options(dir)
			}
			if err == nil {
				t.Fatalf("%q accepted, want an error", tc.args)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestCommandsDefineTheirFlags runs every command's --help: a flag of addBuildFlags whose name a
// command also defines (disk has its own --timeout) would panic there.
func TestCommandsDefineTheirFlags(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	stderr := os.Stderr
	os.Stderr = null
	defer func() { os.Stderr = stderr }()
	for name, c := range commands {
		if err := c.run([]string{"--help"}); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("mkbootimg %s --help = %v, want flag.ErrHelp", name, err)
		}
	}
}

// TestBuildInitramfsPrivate: mkbootimg writes initramfs.img readable by root alone, since its
// dockerinit.toml may hold the rescue shell's password hash (from the flag or --config), and
// vmlinuz readable by all.
func TestBuildInitramfsPrivate(t *testing.T) {
	dir := t.TempDir()
	rootfs, initBin, config := filepath.Join(dir, "rootfs"), filepath.Join(dir, "dockerinit"), filepath.Join(dir, "dockerinit.toml")
	for name, data := range map[string]string{
		filepath.Join(rootfs, "boot", "vmlinuz-6.1.0-1-amd64"): "kernel",
		initBin: "\x7fELF fake init",
		config:  "[rescue]\npassword_hash = '" + hash6 + "'\n",
	} {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name     string
		args     []string
		wantHash string
	}{
		{"--rescue-password-hash", []string{"--rescue-password-hash", hash6}, hash6},
		{"--config with a hash", []string{"--config", config}, hash6},
		{"no hash", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			args := append([]string{"--rootfs", rootfs, "--init", initBin, "--modules", "none", "--image", "desktop", "--out", out}, tc.args...)
			if err := runBuild(args); err != nil {
				t.Fatal(err)
			}
			for name, want := range map[string]os.FileMode{"initramfs.img": 0o600, "vmlinuz": 0o644} {
				if fi, err := os.Stat(filepath.Join(out, name)); err != nil || fi.Mode() != want {
					t.Errorf("%s: mode %v, %v; want %v", name, fi.Mode(), err, want)
				}
			}
			img, err := os.ReadFile(filepath.Join(out, "initramfs.img"))
			if err != nil {
				t.Fatal(err)
			}
			entries, err := initramfs.Read(img)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(entries, func(e initramfs.Entry) bool { return e.Path == "etc/dockerinit.toml" })
			if i < 0 {
				t.Fatal("no etc/dockerinit.toml in the initramfs")
			}
			cfg, err := bootparam.DecodeConfig(entries[i].Data)
			if err != nil || cfg.Rescue.PasswordHash != tc.wantHash {
				t.Errorf("embedded rescue.password_hash %q, %v; want %q", cfg.Rescue.PasswordHash, err, tc.wantHash)
			}
		})
	}
}
