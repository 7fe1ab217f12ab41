package blockdev

import "testing"

func TestParseUevent(t *testing.T) {
	tests := []struct {
		msg                   string
		wantAction, wantSubsy string
	}{
		{"add@/devices/virtual/block/loop0\x00ACTION=add\x00DEVPATH=/devices/virtual/block/loop0\x00SUBSYSTEM=block\x00DEVNAME=loop0\x00",
			"add", "block"},
		{"change@/devices/virtual/block/loop0\x00ACTION=change\x00SUBSYSTEM=block\x00", "change", "block"},
		{"bind@/devices/pci0000:00/0000:00:03.0\x00ACTION=bind\x00SUBSYSTEM=pci\x00", "bind", "pci"},
		{"add@/module/virtio_blk\x00SUBSYSTEM=module", "add", "module"}, // no ACTION key, no trailing NUL
		{"remove@/x", "remove", ""},
		{"", "", ""},
		{"garbage", "", ""},
	}
	for _, tt := range tests {
		action, subsystem := parseUevent([]byte(tt.msg))
		if action != tt.wantAction || subsystem != tt.wantSubsy {
			t.Errorf("parseUevent(%q) = %q, %q; want %q, %q", tt.msg, action, subsystem, tt.wantAction, tt.wantSubsy)
		}
	}
}

func FuzzUevent(f *testing.F) {
	f.Add([]byte("add@/devices/virtual/block/loop0\x00ACTION=add\x00SUBSYSTEM=block\x00"))
	f.Add([]byte("@\x00=\x00\x00"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		parseUevent(msg)
	})
}
