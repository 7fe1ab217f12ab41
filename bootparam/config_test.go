package bootparam

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// designExample is the dockerinit.toml of DESIGN.md.
const designExample = `image = "desktop:latest"
[root]
device = "LABEL=linux"
flags = "compress=zstd"
docker_path = "docker"
rwlayer = "docker_rwlayer"
[toplayer]
device = "LABEL=linux"
path = "boot_docker"
[boot]
init = "/sbin/init"
timeout = "30s"
`

// testHash is `openssl passwd -6 -salt saltsalt hello`.
const testHash = "$6$saltsalt$YTeBOLnmm3CoeJTzBuijUEtOEWCqrw/nQ8/AeMmON4LGp3k0ZiMjC1OdqzWFUAfDQBvYkOch9BWtQTBcZ1E/p0"

var designConfig = Config{
	Image:    "desktop:latest",
	Root:     RootConfig{Device: "LABEL=linux", Flags: "compress=zstd", DockerPath: "docker", RWLayer: "docker_rwlayer"},
	TopLayer: TopLayerConfig{Device: "LABEL=linux", Path: "boot_docker"},
	Boot:     BootConfig{Init: "/sbin/init", Timeout: "30s"},
}

func TestDecodeConfig(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Config
		wantErr []string // substrings of the error, in any order
	}{
		{name: "design example", in: designExample, want: designConfig},
		{name: "empty file", in: "", want: Config{}},
		{
			name: "every key",
			in: `image = "sha256:abcd"
[root]
device = "UUID=1"
fstype = "btrfs"
flags = "subvol=x,noatime"
docker_path = "/var/lib/docker"
rwlayer = "rw"
[toplayer]
device = "/dev/sdb1"
fstype = "ext4"
flags = "ro"
path = "/"
required = true
[boot]
init = "/lib/systemd/systemd"
timeout = "45"
debug = true
[rescue]
password_hash = "` + testHash + `"
`,
			want: Config{
				Image:    "sha256:abcd",
				Root:     RootConfig{Device: "UUID=1", FSType: "btrfs", Flags: "subvol=x,noatime", DockerPath: "/var/lib/docker", RWLayer: "rw"},
				TopLayer: TopLayerConfig{Device: "/dev/sdb1", FSType: "ext4", Flags: "ro", Path: "/", Required: true},
				Boot:     BootConfig{Init: "/lib/systemd/systemd", Timeout: "45", Debug: true},
				Rescue:   RescueConfig{PasswordHash: testHash},
			},
		},
		{
			name:    "unknown keys named with the valid ones",
			in:      "imag = \"x\"\n[root]\ndevice = \"a\"\nrw_layer = \"b\"\n[boot]\ntimout = \"3s\"\n",
			wantErr: []string{"imag, root.rw_layer, boot.timout", "valid keys are image, root.device, root.fstype, root.flags, root.docker_path, root.rwlayer, root.namespace, toplayer.device, toplayer.fstype, toplayer.flags, toplayer.path, toplayer.required, boot.init, boot.timeout, boot.debug, boot.tries, boot.sealed_cmdline, rescue.password_hash"},
		},
		{
			name:    "unknown table named once",
			in:      "[kernel]\ncmdline = \"quiet\"\nversion = \"6\"\n",
			wantErr: []string{"unknown key(s) kernel; valid"},
		},
		{name: "wrong type", in: "[boot]\ndebug = \"yes\"\n", wantErr: []string{ConfigPath, "debug"}},
		{name: "table given as string", in: `root = "LABEL=linux"`, wantErr: []string{ConfigPath, "root"}},
		{name: "syntax error", in: "image = desktop\n", wantErr: []string{ConfigPath, "line 1"}},
		{name: "bad timeout", in: "[boot]\ntimeout = \"soon\"\n", wantErr: []string{`boot.timeout "soon": not a duration`}},
		{name: "bad password hash", in: "[rescue]\npassword_hash = \"hunter2\"\n", wantErr: []string{ConfigPath, "rescue.password_hash", "openssl passwd -6"}},
		{name: "yescrypt password hash", in: "[rescue]\npassword_hash = \"$y$j9T$abc$def\"\n", wantErr: []string{"rescue.password_hash", "$y$ is not supported", "mkpasswd -m sha-512"}},
		{name: "zero timeout", in: "[boot]\ntimeout = \"0s\"\n", wantErr: []string{`boot.timeout "0s": not a positive duration`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeConfig([]byte(tt.in))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("DecodeConfig: %v", err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("DecodeConfig\n got %+v\nwant %+v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("DecodeConfig = %+v, want an error", got)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestUnknownKeysErrorType(t *testing.T) {
	_, err := DecodeConfig([]byte("[toplayer]\ndevice = \"a\"\nrequird = true\n"))
	var uk *UnknownKeysError
	if !errors.As(err, &uk) {
		t.Fatalf("error %v is not an *UnknownKeysError", err)
	}
	if want := []string{"toplayer.requird"}; !reflect.DeepEqual(uk.Keys, want) {
		t.Errorf("Keys = %q, want %q", uk.Keys, want)
	}
}

func TestEncode(t *testing.T) {
	got, err := designConfig.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `image = "desktop:latest"

[root]
  device = "LABEL=linux"
  flags = "compress=zstd"
  docker_path = "docker"
  rwlayer = "docker_rwlayer"

[toplayer]
  device = "LABEL=linux"
  path = "boot_docker"

[boot]
  init = "/sbin/init"
  timeout = "30s"
`
	if string(got) != want {
		t.Errorf("Encode:\n%s\nwant:\n%s", got, want)
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	tests := []Config{
		{},
		designConfig,
		{Image: "x"},
		{Boot: BootConfig{Debug: true}},
		{TopLayer: TopLayerConfig{Required: true}},
		{Image: "x", Rescue: RescueConfig{PasswordHash: testHash}},
		{Image: "we\"ird\\ \n\t\x01 ünïcode", Root: RootConfig{Flags: "a=b,c"}, Boot: BootConfig{Timeout: "90"}},
	}
	for _, c := range tests {
		data, err := c.Encode()
		if err != nil {
			t.Fatalf("Encode(%+v): %v", c, err)
		}
		back, err := DecodeConfig(data)
		if err != nil {
			t.Fatalf("DecodeConfig(Encode(%+v)): %v\n%s", c, err, data)
		}
		if back != c {
			t.Errorf("round trip\n got %+v\nwant %+v", back, c)
		}
	}
}

func TestEncodeRefuses(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		want string
	}{
		{"bad timeout", Config{Boot: BootConfig{Timeout: "later"}}, `boot.timeout "later"`},
		{"invalid utf-8", Config{Image: "a\xffb"}, "not valid UTF-8"},
		{"bad password hash", Config{Rescue: RescueConfig{PasswordHash: "$6$salt$short"}}, "rescue.password_hash: password hash: the digest is not 86 characters"},
	}
	for _, tt := range tests {
		if _, err := tt.c.Encode(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Encode error = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func TestEncodeRescue(t *testing.T) {
	got, err := Config{Image: "x", Rescue: RescueConfig{PasswordHash: testHash}}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := "image = \"x\"\n\n[rescue]\n  password_hash = \"" + testHash + "\"\n"
	if string(got) != want {
		t.Errorf("Encode:\n%s\nwant:\n%s", got, want)
	}
}

func TestDecodeRescue(t *testing.T) {
	tests := []struct {
		name, in, want, wantErr string
	}{
		{name: "no rescue table", in: designExample},
		{name: "hash", in: "[rescue]\npassword_hash = \"" + testHash + "\"\n", want: testHash},
		{name: "hash beside keys the boot refuses", in: "imagee = \"x\"\n[boot]\ntimeout = \"soon\"\n[rescue]\npassword_hash = \"" + testHash + "\"\n", want: testHash},
		{name: "malformed hash", in: "[rescue]\npassword_hash = \"secret\"\n", wantErr: "rescue.password_hash: password hash: it does not start with $5$ or $6$"},
		{name: "syntax error", in: "[rescue\n", wantErr: "decode " + ConfigPath},
		{name: "wrong type", in: "[rescue]\npassword_hash = 1\n", wantErr: "decode " + ConfigPath},
	}
	for _, tt := range tests {
		got, err := DecodeRescue([]byte(tt.in))
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: DecodeRescue: %v", tt.name, err)
		case tt.wantErr == "" && got.PasswordHash != tt.want:
			t.Errorf("%s: DecodeRescue = %q, want %q", tt.name, got.PasswordHash, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: DecodeRescue error = %v, want one containing %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestDecodeLegacy(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{in: `{"docker_image":"desktop","docker_tag":"latest"}`, want: "desktop:latest"},
		{in: `{"docker_image":"zasdfgbnmsystem/basic","docker_tag":"v2"}`, want: "zasdfgbnmsystem/basic:v2"},
		{in: `{"docker_image":"desktop"}`, want: "desktop"},
		{in: `{"docker_image":"registry:5000/desktop","docker_tag":"1"}`, want: "registry:5000/desktop:1"},
		{in: `{"docker_image":"desktop","docker_tag":"","other":1}`, want: "desktop"},
		{in: `{"docker_image":"desktop:v1","docker_tag":"latest"}`, wantErr: "already has a tag or digest"},
		{in: `{"docker_image":"desktop@sha256:00","docker_tag":"latest"}`, wantErr: "already has a tag or digest"},
		{in: `{"docker_tag":"latest"}`, wantErr: "no docker_image"},
		{in: `{"docker_image":5}`, wantErr: "decode " + LegacyPath},
		{in: `not json`, wantErr: "decode " + LegacyPath},
	}
	for _, tt := range tests {
		got, err := DecodeLegacy([]byte(tt.in))
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("DecodeLegacy(%s): %v", tt.in, err)
		case tt.wantErr == "" && got != tt.want:
			t.Errorf("DecodeLegacy(%s) = %q, want %q", tt.in, got, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("DecodeLegacy(%s) error = %v, want one containing %q", tt.in, err, tt.wantErr)
		}
	}
}

func FuzzDecodeConfig(f *testing.F) {
	f.Add([]byte(designExample))
	f.Add([]byte("[boot]\ntimeout = \"45\"\ndebug = true\n[toplayer]\nrequired = true\n"))
	f.Add([]byte("a.b.c = 1\n[[x]]\n"))
	f.Add([]byte("[rescue]\npassword_hash = \"" + testHash + "\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeConfig(data)
		if err != nil {
			return
		}
		enc, err := c.Encode()
		if err != nil {
			t.Fatalf("Encode of a decoded config %+v: %v", c, err)
		}
		back, err := DecodeConfig(enc)
		if err != nil {
			t.Fatalf("DecodeConfig(Encode(%+v)): %v\n%s", c, err, enc)
		}
		if back != c {
			t.Fatalf("round trip\n got %+v\nwant %+v", back, c)
		}
	})
}
