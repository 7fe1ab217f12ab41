package main

import (
	"flag"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/pin"
	"github.com/dockerinit/dockerinit/status"
)

func TestPinToolFor(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		booted string // boot.json's store; "" is a system dockerinit did not boot
		want   pin.Tool
		refs   []string
		err    string
	}{
		{name: "booted on overlay2", args: []string{"desktop:new", "desktop:good"}, booted: "Docker's overlay2 storage driver",
			want: pin.Tool{Kind: pin.Docker}, refs: []string{"desktop:new", "desktop:good"}},
		{name: "booted on containerd k8s.io", args: []string{"x"}, booted: "containerd (overlayfs snapshotter, namespace k8s.io)",
			want: pin.Tool{Kind: pin.Containerd, Namespace: "k8s.io"}, refs: []string{"x"}},
		{name: "flags after the references", args: []string{"x", "--tool", "containerd", "--namespace", "default", "y"},
			want: pin.Tool{Kind: pin.Containerd, Namespace: "default"}, refs: []string{"x", "y"}},
		{name: "--tool wins over boot.json", args: []string{"--tool", "podman", "--cli", "/usr/bin/podman", "x"}, booted: "Docker's btrfs storage driver",
			want: pin.Tool{Kind: pin.Podman, Command: "/usr/bin/podman"}, refs: []string{"x"}},
		{name: "not booted, no --tool", args: []string{"x"}, err: "--tool docker, podman or containerd is needed"},
		{name: "--namespace without containerd", args: []string{"--tool", "docker", "--namespace", "x", "y"}, err: "--namespace is containerd's"},
		{name: "an unknown tool", args: []string{"--tool", "nerdctl", "x"}, err: "expected docker, podman or containerd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			saved := bootReport
			defer func() { bootReport = saved }()
			bootReport = func() (status.Report, error) {
				if tc.booted == "" {
					return status.Report{}, status.ErrNotBooted
				}
				return status.Report{Store: tc.booted}, nil
			}
			fs := flag.NewFlagSet("pin", flag.ContinueOnError)
			f := addPinFlags(fs)
			refs, err := parseRefs(fs, tc.args)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.toolFor()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("toolFor() error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got.Kind != tc.want.Kind || got.Namespace != tc.want.Namespace || got.Command != tc.want.Command {
				t.Errorf("toolFor() = %+v, %v; want %+v", got, err, tc.want)
			}
			if strings.Join(refs, " ") != strings.Join(tc.refs, " ") {
				t.Errorf("references = %q, want %q", refs, tc.refs)
			}
		})
	}
}

// TestPinNeedsReferences: pin and unpin with no reference say so before running anything.
func TestPinNeedsReferences(t *testing.T) {
	for _, run := range []func([]string) error{runPin, runUnpin} {
		if err := run([]string{"--tool", "docker"}); err == nil || !strings.Contains(err.Error(), "name at least one image") {
			t.Errorf("no reference: error = %v", err)
		}
	}
}
