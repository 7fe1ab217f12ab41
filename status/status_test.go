package status

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dockerinit/dockerinit/bootstate"
)

func sampleReport() Report {
	return Report{
		Image:       "desktop:latest",
		ImageID:     "sha256:4f1c0e2a",
		ImageNames:  []string{"desktop:latest", "registry.example/desktop:2"},
		Created:     time.Date(2026, 11, 20, 9, 30, 0, 0, time.FixedZone("CET", 3600)),
		Layer:       "btrfs/subvolumes/9a8b",
		RWLayer:     "docker_rwlayer",
		DockerPath:  "docker",
		Store:       "Docker's btrfs storage driver",
		RootKind:    "btrfs snapshot",
		Layers:      1,
		RootDevice:  "/dev/nvme0n1p2",
		RootSpec:    "LABEL=linux",
		TopLayer:    "boot_docker",
		TopFiles:    12,
		Init:        "/sbin/init",
		Kernel:      "6.1.0-50-amd64",
		StartedS:    1.2345,
		Steps:       []StepTime{{Name: "mount /proc /sys /dev /run", MS: 0.42}, {Name: "load modules", MS: 210.5}, {Name: "make rw layer", MS: 35}},
		TotalMS:     250.04,
		ModulesLoad: 14,
	}
}

const wantSummary = `Booted by dockerinit into desktop:latest
  image ID      sha256:4f1c0e2a
  also named    registry.example/desktop:2
  created       2026-11-20 08:30:00 UTC
  image layer   btrfs/subvolumes/9a8b
  rw layer      docker_rwlayer (a fresh snapshot of the image layer)
  root device   /dev/nvme0n1p2 (root=LABEL=linux)
  image store   docker (Docker's btrfs storage driver)
  top layer     boot_docker: 12 entries applied
  init          /sbin/init
  kernel        6.1.0-50-amd64
  modules       14 loaded by dockerinit
  Secure Boot   unknown
  command line  from the boot loader (not sealed)
Boot steps (dockerinit started 1.234 s after the kernel, took 250.0 ms):
  mount /proc /sys /dev /run        0.4 ms
  load modules                    210.5 ms
  make rw layer                    35.0 ms
`

const wantBare = `Booted by dockerinit into unknown
  image ID      unknown
  created       unknown
  image layer   unknown
  rw layer      unknown (a fresh snapshot of the image layer)
  root device   unknown
  image store   unknown (unknown)
  top layer     none
  init          unknown
  kernel        unknown
  modules       0 loaded by dockerinit
  Secure Boot   unknown
  command line  from the boot loader (not sealed)
Boot steps (dockerinit started 0.000 s after the kernel, took 0.0 ms):
`

func TestRun(t *testing.T) {
	full, err := json.MarshalIndent(sampleReport(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		file    []byte // boot.json, nil for none
		asJSON  bool
		want    string
		wantErr string
	}{
		{"summary", full, false, wantSummary, ""},
		{"json as it is", full, true, string(full), ""},
		{"empty report", []byte("{}"), false, wantBare, ""},
		{"not booted by dockerinit", nil, false, "", "this system was not booted by dockerinit (no /run/dockerinit/boot.json)"},
		{"not booted, json", nil, true, "", "this system was not booted by dockerinit (no /run/dockerinit/boot.json)"},
		{"damaged", []byte(`{"image": `), false, "", "/run/dockerinit/boot.json is not a boot report: unexpected end of JSON input (--json prints it as it is)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.file != nil {
				p := filepath.Join(root, BootJSON)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, tt.file, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			err := Run(&out, root, tt.asJSON)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("got error %v, want %q", err, tt.wantErr)
				}
				if tt.file == nil && !errors.Is(err, ErrNotBooted) {
					t.Errorf("got %v, want ErrNotBooted", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s\ndiff at: %q", out.String(), tt.want, firstDiff(out.String(), tt.want))
			}
		})
	}
}

// firstDiff is the line where got and want part, for a readable failure.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return g[i]
		}
	}
	return ""
}

// TestCounting: with boot counting, status shows the list, why this image, each image's tries and
// the past boots; mark-good and mark-bad change the record the boot left in /run.
func TestCounting(t *testing.T) {
	root := t.TempDir()
	countFile := "/run/dockerinit/state/docker_rwlayer.json"
	rec := bootstate.Record{}
	list := []string{"desktop:new", "desktop:good"}
	present := func(ref string) (string, error) { return "sha256:" + ref, nil }
	for range 2 { // two boots of the new image that never came up
		c, err := rec.Pick(list, 2, present)
		if err != nil {
			t.Fatal(err)
		}
		rec.Try(c)
	}
	c, err := rec.Pick(list, 2, present)
	if err != nil {
		t.Fatal(err)
	}
	rec.Try(c)
	if err := bootstate.Save(filepath.Join(root, countFile), rec); err != nil {
		t.Fatal(err)
	}
	r := Report{Image: c.Ref, Images: list, Tries: 2, Why: c.Why, PassedOver: c.Skipped, CountFile: countFile}
	data, _ := json.Marshal(r)
	if err := os.WriteFile(filepath.Join(root, BootJSON), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := Run(&out, root, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Booted by dockerinit into desktop:good",
		"image list   desktop:new, desktop:good",
		"why this one  try 1 of 2",
		"passed over  desktop:new failed 2 boots",
		"desktop:new   0 tries left, 2 failed boots",
		"desktop:good  1 tries left, 0 failed boots",
		"desktop:new: did not come up: the boot was never marked good (0 tries left)",
	} {
		if !strings.Contains(strings.Join(strings.Fields(out.String()), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
	msg, err := Mark(root, true)
	if err != nil || !strings.Contains(msg, "marked the boot of desktop:good good") {
		t.Fatalf("Mark good: %q, %v", msg, err)
	}
	got, err := bootstate.Load(filepath.Join(root, countFile))
	if err != nil || !got.Images["desktop:good"].Good || got.Current != "" {
		t.Errorf("after mark-good the record is %+v, %v", got, err)
	}
	if msg, err := Mark(root, true); err != nil { // idempotent
		t.Errorf("mark-good again: %q, %v", msg, err)
	}
}

// TestSealedSummary: status says that Secure Boot was on and which loader words were ignored.
func TestSealedSummary(t *testing.T) {
	r := sampleReport()
	r.SecureBoot, r.CmdlineSealed, r.Ignored = "on", true, []string{"init=/bin/sh", "dockerinit.rescue"}
	var out bytes.Buffer
	if err := Summary(&out, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"  Secure Boot   on\n",
		"  command line  sealed in the UKI; ignored from the boot loader: init=/bin/sh dockerinit.rescue\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	r.Ignored = nil
	out.Reset()
	Summary(&out, r)
	if !strings.Contains(out.String(), "  command line  sealed in the UKI\n") {
		t.Errorf("summary:\n%s", out.String())
	}
}

func TestParseSecureBoot(t *testing.T) {
	for _, tc := range []struct {
		data    []byte
		want    string
		wantErr string
	}{
		{[]byte{6, 0, 0, 0, 1}, "on", ""},
		{[]byte{6, 0, 0, 0, 0}, "off", ""},
		{[]byte{6, 0, 0, 0, 2}, "", "is 2: want 0 or 1"},
		{[]byte{1}, "", "holds 1 bytes"},
		{nil, "", "holds 0 bytes"},
	} {
		got, err := ParseSecureBoot(tc.data)
		if got != tc.want || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("ParseSecureBoot(%v) = %q, %v; want %q, %q", tc.data, got, err, tc.want, tc.wantErr)
		}
	}
}

// FuzzParseSecureBoot feeds the efivarfs file, which the firmware writes.
func FuzzParseSecureBoot(f *testing.F) {
	f.Add([]byte{6, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseSecureBoot(data)
		if (err == nil) != (got == "on" || got == "off") {
			t.Fatalf("%v: %q, %v", data, got, err)
		}
	})
}
