package boot

import (
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/blockdev"
	"github.com/dockerinit/dockerinit/bootparam"
	"github.com/dockerinit/dockerinit/imagestore"
)

// kindStore is a Store that only names itself.
type kindStore struct{ imagestore.Store }

func (kindStore) Kind() string { return "Docker's overlay2 storage driver" }

func TestCheckPreparedOverlay(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    bootparam.Params
		want []string // in the refusal; none: accepted
	}{
		{"rw layer in dockerinit.toml, rw", bootparam.Params{Image: "desktop", RWLayer: "docker_rwlayer"}, nil},
		{"rw layer as rootflags=subvol=", bootparam.Params{Image: "desktop", RWLayer: "docker_rwlayer", RWLayerInRootflags: true},
			[]string{"rootflags=subvol=docker_rwlayer", "ext4 does not take", `rwlayer = "docker_rwlayer" under [root]`, "/etc/dockerinit.toml"}},
		{"ro", bootparam.Params{Image: "desktop", RWLayer: "docker_rwlayer", ReadOnly: true},
			[]string{"ro is on the kernel command line", "replace ro with rw"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Sequence{p: tc.p, store: kindStore{}, dev: blockdev.Device{FSType: "ext4"}}
			err := s.checkPreparedOverlay()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted, want a refusal")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the refusal does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

// MountPrepared does nothing where prepare made no overlay root (a btrfs store's prepare).
func TestMountPreparedWithoutOverlay(t *testing.T) {
	laid, err := MountPrepared(t.TempDir())
	if laid || err != nil {
		t.Fatalf("MountPrepared with nothing at %s: %v, %v; want false, nil", newRootDir, laid, err)
	}
}
