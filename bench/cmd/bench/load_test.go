package main

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWithArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, bootCmdline},
		{[]string{"rootflags=subvol=load_rw_store", "docker_image=load_image_200"},
			strings.Replace(bootCmdline, "rootflags=subvol=docker_rwlayer", "rootflags=subvol=load_rw_store", 1) + " docker_image=load_image_200"},
		{[]string{"toplayer_path=load_toplayer"}, strings.Replace(bootCmdline, "toplayer_path=boot_docker", "toplayer_path=load_toplayer", 1)},
		{[]string{"rw"}, bootCmdline}, // a flag already there stays once
	} {
		if got := withArgs(bootCmdline, tc.args...); got != tc.want {
			t.Errorf("withArgs(%q) =\n%q\nwant\n%q", tc.args, got, tc.want)
		}
	}
	// toplayer= and toplayer_path= are different keys.
	if got := withArgs("toplayer=LABEL=a toplayer_path=x", "toplayer_path=y"); got != "toplayer=LABEL=a toplayer_path=y" {
		t.Errorf("withArgs = %q", got)
	}
}

func TestRWName(t *testing.T) {
	for cmdline, want := range map[string]string{
		bootCmdline: "docker_rwlayer",
		"root=LABEL=linux rootflags=compress=zstd,subvol=rw2,noatime": "rw2",
		"root=LABEL=linux": "",
	} {
		if got := rwName(cmdline); got != want {
			t.Errorf("rwName(%q) = %q, want %q", cmdline, got, want)
		}
	}
}

func TestLayerCount(t *testing.T) {
	docker := t.TempDir()
	dir := filepath.Join(docker, "image", "btrfs", "imagedb", "content", "sha256")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	hex := strings.Repeat("ab", 32)
	config := `{"rootfs": {"type": "layers", "diff_ids": ["sha256:1", "sha256:2", "sha256:3"]}}`
	if err := os.WriteFile(filepath.Join(dir, hex), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := layerCount(docker, "sha256:"+hex); err != nil || n != 3 {
		t.Errorf("layerCount = %d, %v; want 3", n, err)
	}
	if _, err := layerCount(docker, hex); err == nil {
		t.Error("layerCount took an ID without sha256:")
	}
}

// fakeQMP answers one client as QEMU would, replying to each command with replies[execute]
// (an event first), and records the commands.
func fakeQMP(t *testing.T, conn net.Conn, replies map[string]string) chan []map[string]any {
	got := make(chan []map[string]any, 1)
	go func() {
		defer conn.Close()
		var cmds []map[string]any
		defer func() { got <- cmds }()
		w := bufio.NewWriter(conn)
		say := func(s string) { w.WriteString(s + "\r\n"); w.Flush() }
		say(`{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}`)
		dec := json.NewDecoder(conn)
		for {
			var c map[string]any
			if err := dec.Decode(&c); err != nil {
				return
			}
			cmds = append(cmds, c)
			say(`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RTC_CHANGE", "data": {}}`)
			reply, ok := replies[c["execute"].(string)]
			if !ok {
				reply = `{"return": {}}`
			}
			say(reply)
		}
	}()
	return got
}

func TestQMPHotplug(t *testing.T) {
	client, server := net.Pipe()
	got := fakeQMP(t, server, nil)
	q := newQMP(client)
	if err := q.handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	for _, c := range hotplugCommands("/tmp/disk.img") {
		if err := q.execute(c); err != nil {
			t.Fatalf("execute %s: %v", c.Execute, err)
		}
	}
	client.Close()
	cmds := <-got
	var names []string
	for _, c := range cmds {
		names = append(names, c["execute"].(string))
	}
	if strings.Join(names, " ") != "qmp_capabilities blockdev-add device_add" {
		t.Fatalf("commands %v, want qmp_capabilities blockdev-add device_add", names)
	}
	add := cmds[1]["arguments"].(map[string]any)
	file := add["file"].(map[string]any)
	if add["driver"] != "raw" || add["node-name"] != lateDisk || file["filename"] != "/tmp/disk.img" || add["cache"].(map[string]any)["no-flush"] != true {
		t.Errorf("blockdev-add %v", add)
	}
	dev := cmds[2]["arguments"].(map[string]any)
	if dev["driver"] != "virtio-blk-pci" || dev["drive"] != lateDisk || dev["bus"] != hotplugPort {
		t.Errorf("device_add %v", dev)
	}
}

func TestQMPErrors(t *testing.T) {
	client, server := net.Pipe()
	fakeQMP(t, server, map[string]string{"device_add": `{"error": {"class": "GenericError", "desc": "Bus 'hotplug0' not found"}}`})
	q := newQMP(client)
	if err := q.handshake(); err != nil {
		t.Fatal(err)
	}
	err := q.execute(qmpCommand{Execute: "device_add"})
	if err == nil || !strings.Contains(err.Error(), "Bus 'hotplug0' not found") {
		t.Errorf("device_add error = %v, want QEMU's", err)
	}
	client.Close()

	client, server = net.Pipe()
	go func() { server.Write([]byte(`{"greeting": 1}`)); server.Close() }()
	if err := newQMP(client).handshake(); err == nil || !strings.Contains(err.Error(), "not {\"QMP\"") {
		t.Errorf("handshake with a stranger = %v", err)
	}

	client, server = net.Pipe()
	go func() {
		server.Write([]byte(`{"QMP": {}}`))
		buf := make([]byte, 100)
		server.Read(buf)
		server.Close()
	}()
	if err := newQMP(client).handshake(); err == nil || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Errorf("handshake cut short = %v", err)
	}
}
