package bootimage

import (
	"io/fs"

	"github.com/dockerinit/dockerinit/internal/atomicfile"
)

// outFile is one file Build writes to the output directory.
type outFile struct {
	name string // in the directory
	data []byte
	mode fs.FileMode
}

// writeFiles replaces the files in dir as one set, as far as fixed names allow (see
// atomicfile.WriteSet). The boot manager reads dir/vmlinuz and dir/initramfs.img, so there is no
// third name (a symlink, a directory) to switch both with in one rename. Rebuilding for the same
// kernel replaces the initramfs alone, in one rename, with no window at all. The window that
// remains: when both files change (a new kernel), a crash between the two renames (microseconds;
// on a journaling file system usually in one transaction, on FAT not) leaves the new kernel with
// the old initramfs, whose modules are the old kernel's. Running mkbootimg again repairs it, and
// removes the temporary files a crash left.
func writeFiles(dir string, files ...outFile) error {
	set := make([]atomicfile.File, len(files))
	for i, f := range files {
		set[i] = atomicfile.File{Name: f.name, Data: f.data, Mode: f.mode}
	}
	return atomicfile.WriteSet(dir, set...)
}
