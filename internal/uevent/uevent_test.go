package uevent

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want Event
	}{
		{"add@/devices/pci0000:00/0000:00:04.0/virtio1\x00ACTION=add\x00DEVPATH=/devices/pci0000:00/0000:00:04.0/virtio1\x00SUBSYSTEM=virtio\x00MODALIAS=virtio:d00000002v00001AF4\x00SEQNUM=1\x00",
			Event{"add", "virtio", "virtio:d00000002v00001AF4"}},
		{"add@/devices/virtual/block/loop0\x00ACTION=add\x00DEVPATH=/devices/virtual/block/loop0\x00SUBSYSTEM=block\x00DEVNAME=loop0\x00",
			Event{Action: "add", Subsystem: "block"}},
		{"change@/devices/virtual/block/loop0\x00ACTION=change\x00SUBSYSTEM=block\x00", Event{Action: "change", Subsystem: "block"}},
		{"remove@/devices/x\x00ACTION=remove\x00MODALIAS=pci:v1\x00", Event{Action: "remove", Modalias: "pci:v1"}},
		{"add@/module/virtio_blk\x00SUBSYSTEM=module", Event{Action: "add", Subsystem: "module"}}, // no ACTION key, no trailing NUL
		{"remove@/x", Event{Action: "remove"}},
		{"", Event{}},
		{"garbage", Event{}},
	} {
		if got := Parse([]byte(tc.msg)); got != tc.want {
			t.Errorf("Parse(%q) = %+v; want %+v", tc.msg, got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("add@/devices/virtio1\x00ACTION=add\x00MODALIAS=virtio:d00000002v00001AF4\x00"))
	f.Add([]byte("@\x00=\x00\x00"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		e := Parse(msg)
		if strings.ContainsRune(e.Action+e.Subsystem+e.Modalias, 0) {
			t.Errorf("Parse(%q) = %+v: a field holds a NUL", msg, e)
		}
	})
}
