package diskimage

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dockerinit/dockerinit/blockdev"
	"github.com/dockerinit/dockerinit/bootloader"
	"github.com/dockerinit/dockerinit/bootparam"
	"github.com/dockerinit/dockerinit/internal/atomicfile"
)

// DefaultFSType is the file system of a new data partition: the one every store boots from, and
// the only one where Docker's btrfs driver keeps the O(1) snapshot.
const DefaultFSType = "btrfs"

// mkfsTools make a new, empty data partition of each file system the boot mounts a store from.
// The sizes are what each mkfs accepts (xfs refuses less than 300 MiB).
var mkfsTools = map[string]struct {
	tool, pkg string
	args      []string // before -L LABEL FILE
	min       int64
}{
	"btrfs": {"mkfs.btrfs", "btrfs-progs", []string{"-q", "-f"}, 256 * mib},
	"ext4":  {"mkfs.ext4", "e2fsprogs", []string{"-q", "-F"}, 256 * mib},
	"xfs":   {"mkfs.xfs", "xfsprogs", []string{"-q", "-f"}, 300 * mib},
}

// ProbeData reads the type, label and UUID of a file system image for the data partition: it
// must be one the boot mounts an image store from (bootparam.RootFSTypes), and of type want
// when want is not empty.
func ProbeData(image, want string) (bootloader.Volume, error) {
	f, err := os.Open(image)
	if err != nil {
		return bootloader.Volume{}, err
	}
	defer f.Close()
	v, err := probeData(f, want)
	if err != nil {
		return bootloader.Volume{}, fmt.Errorf("%s: %w", image, err)
	}
	return v, nil
}

const nilUUID = "00000000-0000-0000-0000-000000000000"

// probeData is ProbeData on the image's bytes.
func probeData(r io.ReaderAt, want string) (bootloader.Volume, error) {
	fstype, label, uuid, err := blockdev.Probe(r)
	if err != nil {
		return bootloader.Volume{}, err
	}
	if uuid == nilUUID {
		uuid = "" // names no device in particular
	}
	supported := strings.Join(bootparam.RootFSTypes, ", ")
	switch {
	case fstype == "":
		return bootloader.Volume{}, fmt.Errorf("holds no file system that an image store boots from (%s): give the image of the file system itself, not of a partitioned disk", supported)
	case want != "" && fstype != want:
		return bootloader.Volume{}, fmt.Errorf("holds %q, not a %s file system: give a %s image (mkfs.%s)", fstype, want, want, want)
	case fstype == "ext2" || fstype == "ext3":
		return bootloader.Volume{}, fmt.Errorf("holds %s, and dockerinit boots a store from %s only: convert it (tune2fs -O extents,uninit_bg,dir_index, then e2fsck -f) or copy the store to ext4", fstype, supported)
	case !slices.Contains(bootparam.RootFSTypes, fstype):
		return bootloader.Volume{}, fmt.Errorf("holds %s, and an image store boots from %s only: give an image of one of those", fstype, supported)
	case label == "" && uuid == "":
		return bootloader.Volume{}, fmt.Errorf("its %s has neither label nor UUID for root= to name: label it", fstype)
	}
	return bootloader.Volume{FSType: fstype, Label: label, UUID: uuid}, nil
}

// fsType is the data partition's file system asked for: FSType, else btrfs.
func (o Options) fsType() string {
	if o.FSType == "" {
		return DefaultFSType
	}
	return o.FSType
}

// checkData refuses a data partition Build cannot make.
func (o Options) checkData() error {
	t := o.fsType()
	mk, ok := mkfsTools[t]
	switch {
	case !ok || !slices.Contains(bootparam.RootFSTypes, t):
		return fmt.Errorf("a data partition of %q: an image store boots from %s only", t, strings.Join(bootparam.RootFSTypes, ", "))
	case o.DataImage == "" && o.DataSize < mk.min:
		return fmt.Errorf("a new %s of %d MiB is too small: give --data-size of at least %dM (8G or more to hold images)", t, o.DataSize/mib, mk.min/mib)
	}
	return nil
}

// dataImage returns the file system image to copy into the data partition: DataImage, or a new
// empty one made by the host's mkfs in a sparse scratch file, which cleanup removes.
func (o Options) dataImage() (path string, cleanup func(), err error) {
	if o.DataImage != "" {
		return o.DataImage, func() {}, nil
	}
	t := o.fsType()
	mk := mkfsTools[t]
	if _, err := exec.LookPath(mk.tool); err != nil {
		return "", nil, fmt.Errorf("a new %s needs %s: apt-get install %s, or pass --data-image FILE", t, mk.tool, mk.pkg)
	}
	// The scratch file is a temporary file of OUT.<fstype>, a name never committed, so that the
	// next build removes it if this one crashes. A block device's goes to $TMPDIR.
	scratch := o.Out + "." + t
	if dev, _ := isBlockDevice(o.Out); dev {
		scratch = filepath.Join(os.TempDir(), "mkbootimg."+t)
	}
	tmp, err := atomicfile.Create(scratch)
	if err != nil {
		return "", nil, fmt.Errorf("the scratch file for a new %s: %w", t, err)
	}
	err = tmp.Truncate(roundUp(o.DataSize, mib))
	if err == nil {
		label := o.Label
		if label == "" {
			label = "linux"
		}
		args := append(slices.Clone(mk.args), "-L", label, tmp.Name())
		if out, merr := exec.Command(mk.tool, args...).CombinedOutput(); merr != nil {
			err = fmt.Errorf("%s: %w: %s", mk.tool, merr, strings.TrimSpace(string(out)))
		}
	}
	if err != nil {
		tmp.Discard()
		return "", nil, err
	}
	return tmp.Name(), tmp.Discard, nil
}
