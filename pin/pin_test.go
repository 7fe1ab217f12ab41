package pin

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestForStore(t *testing.T) {
	for _, tc := range []struct {
		kind string
		want Tool
		err  bool
	}{
		{kind: "Docker's btrfs storage driver", want: Tool{Kind: Docker}},
		{kind: "Docker's overlay2 storage driver", want: Tool{Kind: Docker}},
		{kind: "containerd (overlayfs snapshotter, namespace moby)", want: Tool{Kind: Docker}},
		{kind: "containerd (btrfs snapshotter, namespace k8s.io)", want: Tool{Kind: Containerd, Namespace: "k8s.io"}},
		{kind: "containerd (namespace default), read from a copy of its database as containerd is running", want: Tool{Kind: Containerd, Namespace: "default"}},
		{kind: "containerd (btrfs and overlayfs snapshotters, namespace default)", want: Tool{Kind: Containerd, Namespace: "default"}},
		{kind: "containers-storage (overlay driver)", want: Tool{Kind: Podman}},
		{kind: "containerd", err: true},
		{kind: "", err: true},
		{kind: "zfs", err: true},
	} {
		got, err := ForStore(tc.kind)
		if (err != nil) != tc.err || got.Kind != tc.want.Kind || got.Namespace != tc.want.Namespace {
			t.Errorf("ForStore(%q) = %+v, %v; want %+v, error %v", tc.kind, got, err, tc.want, tc.err)
		}
	}
}

func TestParseKind(t *testing.T) {
	for _, k := range []Kind{Docker, Podman, Containerd} {
		if got, err := ParseKind(k.String()); err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", k, got, err)
		}
	}
	if _, err := ParseKind("nerdctl"); err == nil {
		t.Error("ParseKind(nerdctl) succeeded")
	}
}

func TestKey(t *testing.T) {
	id := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct{ ref, want string }{
		{"desktop", "docker.io/library/desktop:latest"},
		{"desktop:latest", "docker.io/library/desktop:latest"},
		{"docker.io/library/desktop:latest", "docker.io/library/desktop:latest"},
		{"localhost/keep:1", "localhost/keep:1"},
		{id, id},
		{strings.Repeat("ab", 32), id},
		{"abababab", "sha256:abababab"},
	} {
		if got, err := key(tc.ref); err != nil || got != tc.want {
			t.Errorf("key(%q) = %q, %v; want %q", tc.ref, got, err, tc.want)
		}
	}
	if !sameKey(id, "sha256:abab") || sameKey("desktop", "sha256:abab") || !sameKey("desktop:latest", "docker.io/library/desktop:latest") {
		t.Error("sameKey: an ID prefix must match its full ID, and names their canonical form only")
	}
}

// containerName is what Docker and podman accept as a container name.
var containerName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

func TestPinName(t *testing.T) {
	id := "sha256:0123456789abcdef" + strings.Repeat("0", 48)
	seen := map[string]string{}
	for _, ref := range []string{"desktop:new", "desktop-new", "registry.example:5000/team/os:1.2", strings.Repeat("a", 200) + ":x", id} {
		k, err := key(ref)
		must(t, err)
		name := pinName(Docker, ref, k, id)
		if !containerName.MatchString(name) || !strings.HasPrefix(name, containerPrefix) || !strings.HasSuffix(name, "-0123456789ab") || len(name) > 128 {
			t.Errorf("pinName(%q) = %q: not a container name dockerinit-pin-...-<12 digits of the ID>", ref, name)
		}
		if other, ok := seen[name]; ok {
			t.Errorf("pinName gives %q to both %q and %q", name, other, ref)
		}
		seen[name] = ref
		if c := pinName(Containerd, ref, k, id); !strings.HasPrefix(c, imagePrefix) || !strings.HasSuffix(c, ":0123456789ab") {
			t.Errorf("containerd pinName(%q) = %q, want dockerinit-pin/...:<12 digits>", ref, c)
		}
	}
	if a, b := pinName(Docker, "x:1", "docker.io/library/x:1", id), pinName(Docker, "x:1", "docker.io/library/x:1", "sha256:fedcba"); a == b {
		t.Errorf("one name %q for two images of a reference", a)
	}
}

func TestParseImageTable(t *testing.T) {
	d1, d2 := "sha256:"+strings.Repeat("1", 64), "sha256:"+strings.Repeat("2", 64)
	out := "REF                    TYPE                                                 DIGEST  SIZE     PLATFORMS   LABELS\n" +
		"docker.io/library/t1:b application/vnd.docker.distribution.manifest.v2+json " + d1 + " 11.3 KiB linux/amd64 -\n" +
		"dockerinit-pin/t1-b-0a0b0c0d:111111111111 application/vnd.oci.image.manifest.v1+json " + d1 + " 11.3 KiB linux/amd64 " + LabelImage + "=" + d1 + "," + LabelRef + "=t1:b\n" +
		"weird type " + d2 + "\n" +
		"garbage line\n\n"
	got := parseImageTable([]byte(out))
	if len(got) != 3 {
		t.Fatalf("parseImageTable gave %d images, want 3: %+v", len(got), got)
	}
	if got[0].name != "docker.io/library/t1:b" || got[0].digest != d1 || got[0].labels != nil {
		t.Errorf("row 1 = %+v", got[0])
	}
	if got[1].labels[LabelRef] != "t1:b" || got[1].labels[LabelImage] != d1 {
		t.Errorf("row 2 labels = %v", got[1].labels)
	}
	if got[2].name != "weird" || got[2].digest != d2 {
		t.Errorf("row 3 = %+v", got[2])
	}
	for _, tc := range []struct{ ref, want string }{
		{"t1:b", d1}, {"docker.io/library/t1:b", d1}, {"sha256:1111", d1}, {"t2:x", ""},
	} {
		if id, err := resolveTable(got, tc.ref); err != nil || id != tc.want {
			t.Errorf("resolveTable(%q) = %q, %v; want %q", tc.ref, id, err, tc.want)
		}
	}
}

func FuzzParseImageTable(f *testing.F) {
	f.Add([]byte("REF TYPE DIGEST SIZE PLATFORMS LABELS\nx t sha256:ab 1 KiB linux/amd64 a=b,c=d\n"))
	f.Add([]byte("\n\n sha256: = ,=,\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		for _, img := range parseImageTable(out) {
			if img.name == "" || !strings.HasPrefix(img.digest, "sha256:") || strings.ContainsAny(img.name+img.digest, " \t\n") {
				t.Errorf("parseImageTable(%q) gave %+v", out, img)
			}
		}
	})
}

func TestParseInspect(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      []Pinned
		err       bool
	}{
		{name: "docker", out: `[{"Id":"c1","Name":"/dockerinit-pin-x-1","Image":"sha256:aa","Config":{"Labels":{"org.dockerinit.pin":"x:1","org.dockerinit.pin.image":"sha256:aa"}}}]`,
			want: []Pinned{{Ref: "x:1", ImageID: "sha256:aa", Name: "dockerinit-pin-x-1"}}},
		{name: "podman", out: `[{"Id":"c1","Name":"dockerinit-pin-x-1","Image":"aa","Config":{"Labels":{"org.dockerinit.pin":"x:1"}}}]`,
			want: []Pinned{{Ref: "x:1", ImageID: "aa", Name: "dockerinit-pin-x-1"}}},
		{name: "not ours: no label, or another name", out: `[{"Name":"/web","Config":{"Labels":{"org.dockerinit.pin":"x:1"}}},{"Name":"/dockerinit-pin-y","Config":{"Labels":null}}]`},
		{name: "empty", out: `[]`},
		{name: "garbage", out: `{"Id":`, err: true},
	} {
		got, err := parseInspect([]byte(tc.out))
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("%s: parseInspect = %+v, %v; want %+v, error %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

func FuzzParseInspect(f *testing.F) {
	f.Add([]byte(`[{"Name":"/dockerinit-pin-a","Image":"sha256:aa","Config":{"Labels":{"org.dockerinit.pin":"a"}}}]`))
	f.Add([]byte(`[null,{}]`))
	f.Fuzz(func(t *testing.T, out []byte) {
		pins, err := parseInspect(out)
		if err != nil && pins != nil {
			t.Errorf("parseInspect(%q) gave pins and an error", out)
		}
		for _, p := range pins {
			if p.Ref == "" || !strings.HasPrefix(p.Name, containerPrefix) {
				t.Errorf("parseInspect(%q) gave %+v, which is no dockerinit pin", out, p)
			}
		}
	})
}

// fakeDocker is a docker CLI over a map of names to image IDs and a list of pin containers,
// which records the commands that change something.
type fakeDocker struct {
	images map[string]string // name -> ID
	pins   []Pinned
	calls  []string
}

func (f *fakeDocker) run(_ context.Context, name string, args ...string) ([]byte, error) {
	line := strings.Join(args, " ")
	switch {
	case line == "version --format {{.Server.Version}}":
		return []byte("20.10\n"), nil
	case strings.HasPrefix(line, "ps -a -q --no-trunc --filter label="+LabelRef):
		var ids []string
		for _, p := range f.pins {
			ids = append(ids, p.Name)
		}
		return []byte(strings.Join(ids, "\n")), nil
	case strings.HasPrefix(line, "container inspect "):
		var cs []string
		for _, n := range args[2:] {
			for _, p := range f.pins {
				if p.Name == n {
					cs = append(cs, fmt.Sprintf(`{"Name":"/%s","Image":%q,"Config":{"Labels":{%q:%q}}}`, p.Name, p.ImageID, LabelRef, p.Ref))
				}
			}
		}
		return []byte("[" + strings.Join(cs, ",") + "]"), nil
	case strings.HasPrefix(line, "image inspect --format {{.Id}} "):
		ref := args[len(args)-1]
		k, _ := key(ref)
		for n, id := range f.images {
			if nk, _ := key(n); nk == k || n == ref || strings.HasPrefix(ref, "sha256:") && strings.HasPrefix(id, ref) {
				return []byte(id + "\n"), nil
			}
		}
		return nil, fmt.Errorf("%s %s: exit status 1: Error: No such image: %s", name, line, ref)
	}
	f.calls = append(f.calls, line)
	switch args[0] {
	case "create":
		i := slices.Index(args, "--name")
		ref, _ := strings.CutPrefix(args[i+3], LabelRef+"=")
		f.pins = append(f.pins, Pinned{Ref: ref, ImageID: args[len(args)-2], Name: args[i+1]})
	case "rm":
		f.pins = slices.DeleteFunc(f.pins, func(p Pinned) bool { return p.Name == args[1] })
	case "tag":
		f.images[args[2]] = args[1]
	}
	return nil, nil
}

func TestPinUnpinSync(t *testing.T) {
	const a, b = "sha256:aaaaaaaaaaaa0000", "sha256:bbbbbbbbbbbb0000"
	pinOf := func(ref, id string) Pinned {
		k, _ := key(ref)
		return Pinned{Ref: ref, ImageID: id, Name: pinName(Docker, ref, k, id)}
	}
	for _, tc := range []struct {
		name      string
		images    map[string]string
		pins      []Pinned
		do        func(Tool) error
		wantCalls []string
		wantPins  []Pinned
		wantErr   string
	}{
		{
			name:   "a new pin",
			images: map[string]string{"desktop:new": a},
			do:     func(t Tool) error { return t.Pin(context.Background(), "desktop:new") },
			wantCalls: []string{"create --pull never --network none --name " + pinOf("desktop:new", a).Name +
				" --label " + LabelRef + "=desktop:new --label " + LabelImage + "=" + a + " " + a + " " + pinCommand},
			wantPins: []Pinned{pinOf("desktop:new", a)},
		},
		{
			name:     "pinned already, under another spelling",
			images:   map[string]string{"desktop:latest": a},
			pins:     []Pinned{pinOf("desktop", a)},
			do:       func(t Tool) error { return t.Pin(context.Background(), "docker.io/library/desktop:latest", "desktop") },
			wantPins: []Pinned{pinOf("desktop", a)},
		},
		{
			name:      "the tag moved: the new pin first, then the old one goes",
			images:    map[string]string{"desktop:good": b},
			pins:      []Pinned{pinOf("desktop:good", a)},
			do:        func(t Tool) error { return t.Pin(context.Background(), "desktop:good") },
			wantCalls: []string{"create", "rm " + pinOf("desktop:good", a).Name},
			wantPins:  []Pinned{pinOf("desktop:good", b)},
		},
		{
			name:      "a name gone, its pin there: named again",
			images:    map[string]string{"other:1": a},
			pins:      []Pinned{pinOf("desktop:good", a)},
			do:        func(t Tool) error { return t.Pin(context.Background(), "desktop:good") },
			wantCalls: []string{"tag " + a + " desktop:good"},
			wantPins:  []Pinned{pinOf("desktop:good", a)},
		},
		{
			name:      "gone and never pinned; the others are still pinned",
			images:    map[string]string{"x:1": a},
			do:        func(t Tool) error { return t.Pin(context.Background(), "missing:1", "x:1") },
			wantErr:   "image missing:1 is not in the docker store, so it cannot be pinned; pull, build or load it first",
			wantCalls: []string{"create"}, wantPins: []Pinned{pinOf("x:1", a)},
		},
		{
			name:    "a bad reference",
			do:      func(t Tool) error { return t.Pin(context.Background(), "a b") },
			wantErr: `image "a b": expected`,
		},
		{
			name:   "unpin by reference and by name",
			images: map[string]string{},
			pins:   []Pinned{pinOf("x:1", a), pinOf("y:1", b), pinOf("z:1", b)},
			do: func(t Tool) error {
				return t.Unpin(context.Background(), "docker.io/library/x:1", pinOf("y:1", b).Name, "never:1")
			},
			wantCalls: []string{"rm " + pinOf("x:1", a).Name, "rm " + pinOf("y:1", b).Name},
			wantPins:  []Pinned{pinOf("z:1", b)},
		},
		{
			name:      "sync: pins the list, by name and by ID prefix, and only then unpins the rest",
			images:    map[string]string{"new:1": a, "old:1": b},
			pins:      []Pinned{pinOf("gone:1", b), pinOf("old:1", b)},
			do:        func(t Tool) error { return t.Sync(context.Background(), []string{"new:1", "sha256:bbbbbbbb"}) },
			wantCalls: []string{"create", "create", "rm " + pinOf("gone:1", b).Name, "rm " + pinOf("old:1", b).Name},
			wantPins:  []Pinned{pinOf("new:1", a), pinOf(b, b)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeDocker{images: tc.images, pins: slices.Clone(tc.pins)}
			if f.images == nil {
				f.images = map[string]string{}
			}
			err := tc.do(Tool{Kind: Docker, Run: f.run})
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error = %v, want %q", err, tc.wantErr)
			}
			if len(f.calls) != len(tc.wantCalls) {
				t.Fatalf("ran %q, want %q", f.calls, tc.wantCalls)
			}
			for i, c := range f.calls {
				if !strings.HasPrefix(c, tc.wantCalls[i]) {
					t.Errorf("command %d = %q, want %q...", i, c, tc.wantCalls[i])
				}
			}
			if !slices.Equal(f.pins, tc.wantPins) {
				t.Errorf("pins = %+v, want %+v", f.pins, tc.wantPins)
			}
		})
	}
}

// TestCheck: the error names the CLI that is missing or the daemon to start.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		tool Tool
		err  error
		want string
	}{
		{Tool{Kind: Docker}, errors.New("docker version: exit status 1: Cannot connect to the Docker daemon"), "start dockerd: systemctl start docker"},
		{Tool{Kind: Containerd, Namespace: "default"}, fmt.Errorf("ctr: %w", errors.New("dial: timeout")), "start containerd"},
		{Tool{Kind: Podman}, fmt.Errorf("podman: %w", exec.ErrNotFound), "apt-get install podman"},
		{Tool{Kind: Containerd}, nil, "pass --namespace"},
		{Tool{}, nil, "pass --tool"},
	} {
		tool := tc.tool
		tool.Run = func(context.Context, string, ...string) ([]byte, error) { return nil, tc.err }
		if err := tool.Check(context.Background()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v Check() = %v, want %q", tc.tool.Kind, err, tc.want)
		}
	}
}
