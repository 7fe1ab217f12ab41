package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/bootloader"
	"github.com/dockerinit/dockerinit/bootparam"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"260M": 260 << 20, "8G": 8 << 30, "8GiB": 8 << 30, "512k": 512 << 10, "1048576": 1 << 20, "2T": 2 << 40} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1M", "1.5G", "0", "99999999999999T"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	f.Add("260M")
	f.Add("8GiB")
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := parseSize(s); err == nil && n <= 0 {
			t.Errorf("parseSize(%q) = %d, want a positive size or an error", s, n)
		}
	})
}

func TestStorePath(t *testing.T) {
	data := bootloader.Volume{FSType: "ext4", Label: "linux", UUID: "0b7e4d21-4d6c-4f6b-9d2a-1a2b3c4d5e6f"}
	at := func(fstype, uuid, path string) bootloader.Location {
		return bootloader.Location{Volume: bootloader.Volume{FSType: fstype, Label: "linux", UUID: uuid}, Path: path, Mount: "/mnt", Source: "/dev/loop0"}
	}
	for _, tc := range []struct {
		name   string
		loc    bootloader.Location
		locErr error
		want   string
		err    string
	}{
		{name: "Docker data root", loc: at("ext4", data.UUID, "/var/lib/docker"), want: "var/lib/docker"},
		{name: "containers-storage root", loc: at("ext4", data.UUID, "/var/lib/containers/storage"), want: "var/lib/containers/storage"},
		{name: "in a btrfs subvolume mount", loc: at("ext4", data.UUID, "/@/var/lib/containerd"), want: "@/var/lib/containerd"},
		{name: "another file system", loc: at("ext4", "11111111-2222-3333-4444-555555555555", "/var/lib/docker"),
			err: "not on the data image's file system (ext4, UUID 0b7e4d21-4d6c-4f6b-9d2a-1a2b3c4d5e6f): mount the data image"},
		{name: "another type, same UUID", loc: at("xfs", data.UUID, "/var/lib/docker"), err: "not on the data image's file system"},
		{name: "unreadable device", loc: at("ext4", "", "/var/lib/docker"), locErr: errors.New("permission denied"),
			err: "permission denied: the store's file system cannot be compared"},
		{name: "store at the top", loc: at("ext4", data.UUID, "/"), err: "must be in a folder of it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := storePath(tc.loc, tc.locErr, data)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("storePath = %q, %v; want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("storePath = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestBootOnData(t *testing.T) {
	xfs := bootloader.Volume{FSType: "xfs", UUID: "3f1c0e5a-2b7d-4e8f-a9c6-5d4e3f2a1b0c"}
	btrfs := bootloader.Volume{FSType: "btrfs", Label: "linux", UUID: "8a2ae8d4-7e54-4b3c-9c0c-3f4c4ad1c7a1"}
	for _, tc := range []struct {
		name      string
		given     bootparam.RootConfig
		data      bootloader.Volume
		fromStore bool
		want      bootparam.RootConfig
		err       string
	}{
		{name: "btrfs image or new btrfs: docker/ as before", data: btrfs,
			want: bootparam.RootConfig{Device: "LABEL=linux", FSType: "btrfs", DockerPath: "docker"}},
		{name: "unlabelled image: root by UUID", data: xfs,
			want: bootparam.RootConfig{Device: "UUID=" + xfs.UUID, FSType: "xfs", DockerPath: "docker"}},
		{name: "flags win", data: btrfs, fromStore: true, given: bootparam.RootConfig{Device: "PARTLABEL=store", DockerPath: "srv/docker"},
			want: bootparam.RootConfig{Device: "PARTLABEL=store", FSType: "btrfs", DockerPath: "srv/docker"}},
		{name: "data image without --store nor --docker-path", data: xfs, fromStore: true, err: "say where the image store is in it with --docker-path"},
		{name: "--root-fstype disagrees", data: xfs, given: bootparam.RootConfig{FSType: "ext4"}, err: "--root-fstype ext4, but partition 2 holds xfs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := tc.given
			err := bootOnData(&root, tc.data, tc.fromStore, "")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("bootOnData = %+v, %v; want an error containing %q", root, err, tc.err)
				}
				return
			}
			if err != nil || root != tc.want {
				t.Errorf("bootOnData = %+v, %v; want %+v", root, err, tc.want)
			}
		})
	}
}
