package bootparam

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/dockerinit/dockerinit/rescue/password"
)

// Where dockerinit finds its configuration inside the initramfs.
const (
	ConfigPath = "/etc/dockerinit.toml"
	LegacyPath = "/etc/docker-btrfs.json" // the origin mkinitcpio hook's file
)

// Config is /etc/dockerinit.toml: mkbootimg writes it, dockerinit reads it.
type Config struct {
	Image    string         `toml:"image,omitempty"`
	Root     RootConfig     `toml:"root,omitempty"`
	TopLayer TopLayerConfig `toml:"toplayer,omitempty"`
	Boot     BootConfig     `toml:"boot,omitempty"`
	Rescue   RescueConfig   `toml:"rescue,omitempty"`
}

// RootConfig is the [root] table: the file system holding the image store.
type RootConfig struct {
	Device     string `toml:"device,omitempty"`
	FSType     string `toml:"fstype,omitempty"`
	Flags      string `toml:"flags,omitempty"`
	DockerPath string `toml:"docker_path,omitempty"`
	RWLayer    string `toml:"rwlayer,omitempty"`
	Namespace  string `toml:"namespace,omitempty"` // containerd namespace; default moby
}

// TopLayerConfig is the [toplayer] table: the per-machine folder laid over
// the new root.
type TopLayerConfig struct {
	Device   string `toml:"device,omitempty"`
	FSType   string `toml:"fstype,omitempty"`
	Flags    string `toml:"flags,omitempty"`
	Path     string `toml:"path,omitempty"`
	Required bool   `toml:"required,omitempty"`
}

// BootConfig is the [boot] table.
type BootConfig struct {
	Init    string `toml:"init,omitempty"`
	Timeout string `toml:"timeout,omitempty"` // "30s", "1m" or bare seconds "45"
	Debug   bool   `toml:"debug,omitempty"`
	// Tries counts boots: an image of the list in image that has not been marked good gets this
	// many tries before the next image of the list boots instead. 0: no counting.
	Tries int `toml:"tries,omitempty,omitzero"`
	// SealedCmdline is the kernel command line signed into the UKI that holds this initramfs
	// (mkbootimg uki sets it). When set, the boot reads its parameters from it alone and ignores
	// what the boot loader passed besides: a signed image cannot be steered from the boot menu.
	SealedCmdline string `toml:"sealed_cmdline,omitempty"`
}

// RescueConfig is the [rescue] table: what guards the rescue shell.
type RescueConfig struct {
	// PasswordHash, when set, is asked for before the rescue shell opens: a SHA-crypt hash
	// ("$6$..." from `openssl passwd -6`). The kernel command line cannot override it.
	PasswordHash string `toml:"password_hash,omitempty"`
}

// UnknownKeysError reports keys of dockerinit.toml that dockerinit does not
// know, which are almost always typos.
type UnknownKeysError struct {
	Keys  []string // dotted, as in "root.device_path"
	Valid []string
}

func (e *UnknownKeysError) Error() string {
	return fmt.Sprintf("%s: unknown key(s) %s; valid keys are %s (fix the spelling or remove them)",
		ConfigPath, strings.Join(e.Keys, ", "), strings.Join(e.Valid, ", "))
}

// DecodeConfig parses dockerinit.toml strictly: unknown keys, wrong types and
// a timeout that does not parse are errors.
func DecodeConfig(data []byte) (Config, error) {
	var c Config
	md, err := toml.Decode(string(data), &c)
	if err != nil {
		return Config{}, fmt.Errorf("decode %s: %w", ConfigPath, err)
	}
	var unknown []string
	var tables []toml.Key // unknown keys already reported
	for _, k := range md.Undecoded() {
		// The keys inside an unknown table are unknown too: name only the table.
		if slices.ContainsFunc(tables, func(t toml.Key) bool { return len(t) < len(k) && slices.Equal(t, k[:len(t)]) }) {
			continue
		}
		tables = append(tables, k)
		unknown = append(unknown, k.String())
	}
	if len(unknown) > 0 {
		return Config{}, &UnknownKeysError{Keys: unknown, Valid: validKeys()}
	}
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Encode writes c as TOML, deterministically and without empty values, so
// that DecodeConfig(c.Encode()) gives c back. It refuses what DecodeConfig
// would refuse.
func (c Config) Encode() ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(c); err != nil {
		return nil, fmt.Errorf("encode %s: %w", ConfigPath, err)
	}
	return b.Bytes(), nil
}

// validate checks what can be checked without the command line.
func (c Config) validate() error {
	for _, s := range []string{c.Image, c.Root.Device, c.Root.FSType, c.Root.Flags, c.Root.DockerPath,
		c.Root.RWLayer, c.TopLayer.Device, c.TopLayer.FSType, c.TopLayer.Flags, c.TopLayer.Path,
		c.Boot.Init, c.Boot.Timeout, c.Boot.SealedCmdline, c.Rescue.PasswordHash} {
		if !utf8.ValidString(s) {
			return fmt.Errorf("%s: value %q is not valid UTF-8, which TOML requires", ConfigPath, s)
		}
	}
	if c.Boot.Tries < 0 || c.Boot.Tries > MaxTries {
		return fmt.Errorf("%s: boot.tries %d: give 0 (no boot counting) to %d", ConfigPath, c.Boot.Tries, MaxTries)
	}
	if c.Boot.Timeout != "" {
		if _, err := ParseTimeout(c.Boot.Timeout); err != nil {
			return fmt.Errorf("%s: boot.timeout %q: %w; give e.g. \"30s\", \"2m\" or bare seconds \"45\"", ConfigPath, c.Boot.Timeout, err)
		}
	}
	if strings.ContainsAny(c.Boot.SealedCmdline, "\n\x00") {
		return fmt.Errorf("%s: boot.sealed_cmdline holds a newline or NUL: give the kernel command line on one line", ConfigPath)
	}
	return c.Rescue.validate()
}

func (r RescueConfig) validate() error {
	if r.PasswordHash == "" {
		return nil
	}
	if err := password.Check(r.PasswordHash); err != nil {
		return fmt.Errorf("%s: rescue.password_hash: %w", ConfigPath, err)
	}
	return nil
}

// DecodeRescue reads only the [rescue] table of dockerinit.toml and ignores every other key, so
// that a configuration the boot refuses (a typo elsewhere) still guards the rescue shell, which is
// where such a boot ends up.
func DecodeRescue(data []byte) (RescueConfig, error) {
	var c struct {
		Rescue RescueConfig `toml:"rescue"`
	}
	if _, err := toml.Decode(string(data), &c); err != nil {
		return RescueConfig{}, fmt.Errorf("decode %s: %w", ConfigPath, err)
	}
	if err := c.Rescue.validate(); err != nil {
		return RescueConfig{}, err
	}
	return c.Rescue, nil
}

// validKeys lists the dotted keys of Config from its toml tags, so the list
// in error messages cannot drift from the struct.
func validKeys() []string {
	var keys []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, prefix+name+".")
				continue
			}
			keys = append(keys, prefix+name)
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return keys
}

// DecodeLegacy reads the origin project's /etc/docker-btrfs.json,
// {"docker_image":"desktop","docker_tag":"latest"}, and returns the image
// reference it names ("desktop:latest"). The tag is optional.
func DecodeLegacy(data []byte) (image string, err error) {
	var l struct {
		Image string `json:"docker_image"`
		Tag   string `json:"docker_tag"`
	}
	if err := json.Unmarshal(data, &l); err != nil {
		return "", fmt.Errorf("decode %s: %w (expected {\"docker_image\":\"NAME\",\"docker_tag\":\"TAG\"})", LegacyPath, err)
	}
	if l.Image == "" {
		return "", fmt.Errorf("%s: no docker_image; expected {\"docker_image\":\"NAME\",\"docker_tag\":\"TAG\"}", LegacyPath)
	}
	if l.Tag == "" {
		return l.Image, nil
	}
	if hasTagOrDigest(l.Image) {
		return "", fmt.Errorf("%s: docker_image %q already has a tag or digest and docker_tag is %q; remove one of them",
			LegacyPath, l.Image, l.Tag)
	}
	return l.Image + ":" + l.Tag, nil
}

// hasTagOrDigest reports whether ref ends in :TAG or @DIGEST; a ':' before
// the last '/' is a registry port.
func hasTagOrDigest(ref string) bool {
	last := ref[strings.LastIndexByte(ref, '/')+1:]
	return strings.ContainsAny(last, ":@")
}
