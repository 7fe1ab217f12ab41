package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/btrfs"
	"github.com/dockerinit/dockerinit/internal/fileid"
)

// rwMarkXattr marks the root of a subvolume dockerinit made as an rw layer, so that a later boot
// deletes only what it made: a host's own root subvolume (Ubuntu's @, Fedora's root) named by
// subvol= through a distribution's initramfs hook is refused, not destroyed. Its value is the
// image ID the layer was made from.
const rwMarkXattr = "trusted.dockerinit.rwlayer"

// rwLayerPath returns where the rw layer goes under the top level, after checking what the path
// leads to on disk, not how it is spelled: no component may be a symlink, and neither it nor any
// parent of it may be one of the stores (the directories the images are read from), nor may a
// store be inside it. A store reached through a link (var/lib/docker -> ../../docker) is the same
// directory to this check.
func rwLayerPath(top, rwLayer string, stores ...string) (string, error) {
	storeIDs := map[fileid.ID]string{}
	inside := map[fileid.ID]string{} // the stores' parents, up to "/"
	for _, s := range stores {
		id, ups, err := storeIDsOf(s)
		if errors.Is(err, unix.ENOENT) {
			continue // a store that is not there cannot be harmed
		}
		if err != nil {
			return "", fmt.Errorf("find where the image store %s is: %w", s, err)
		}
		storeIDs[id] = s
		for _, up := range ups {
			inside[up] = s
		}
	}
	p := top
	for _, c := range strings.Split(rwLayer, "/") {
		p = filepath.Join(p, c)
		var st unix.Stat_t
		err := unix.Lstat(p, &st)
		if errors.Is(err, unix.ENOENT) {
			break
		}
		if err != nil {
			return "", &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		rel := strings.TrimPrefix(p, top+"/")
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return "", fmt.Errorf("rootflags=subvol=%s: /%s is a symlink; refusing to follow it (it could lead into the image store)", rwLayer, rel)
		}
		if s, ok := storeIDs[fileid.Of(&st)]; ok {
			return "", fmt.Errorf("rootflags=subvol=%s: /%s is the image store %s on disk (by another path), so the rw layer would be inside the image store, and recreating it at every boot would destroy the images; name an rw layer beside the store: rootflags=subvol=docker_rwlayer",
				rwLayer, rel, strings.TrimPrefix(s, top+"/"))
		}
		if s, ok := inside[fileid.Of(&st)]; ok && p == filepath.Join(top, rwLayer) {
			return "", fmt.Errorf("rootflags=subvol=%s: the image store %s is inside /%s on disk, and the rw layer is deleted at every boot; name an rw layer beside the store: rootflags=subvol=docker_rwlayer",
				rwLayer, strings.TrimPrefix(s, top+"/"), rel)
		}
	}
	return filepath.Join(top, rwLayer), nil
}

// storeIDsOf returns the ID of the store directory dir (symlinks followed, as the store is read)
// and those of the directories above it.
func storeIDsOf(dir string) (fileid.ID, []fileid.ID, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fileid.ID{}, nil, err
	}
	defer unix.Close(fd)
	id, err := fileid.Fd(fd)
	if err != nil {
		return fileid.ID{}, nil, err
	}
	ups, err := fileid.Parents(fd)
	return id, ups, err
}

// ownRWLayer reports why the existing subvolume rw is one dockerinit made, or an error saying why
// it will not be deleted: it carries the mark, or it is a snapshot of a subvolume in layers (a
// layer made before the mark existed, or one whose mark a power cut lost).
func ownRWLayer(rw, name, layers string) error {
	if _, err := unix.Lgetxattr(rw, rwMarkXattr, nil); err == nil {
		return nil
	}
	info, err := btrfs.Info(rw)
	if err != nil {
		return err
	}
	if !info.ParentUUID.IsZero() {
		entries, _ := os.ReadDir(layers)
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			if li, err := btrfs.Info(filepath.Join(layers, e.Name())); err == nil && li.UUID == info.ParentUUID {
				return nil
			}
		}
	}
	origin := "it was made by `btrfs subvolume create`"
	if !info.ParentUUID.IsZero() {
		origin = fmt.Sprintf("it is a snapshot of subvolume %s, which is no image layer", info.ParentUUID)
	}
	return fmt.Errorf("rootflags=subvol=%s: /%s is a btrfs subvolume that dockerinit did not make (it has no %s mark, and %s); refusing to delete it, as it may be a system's own root: choose another subvol= for the rw layer, or, if it really is an old rw layer, delete it yourself (btrfs subvolume delete -R /%s) and boot again",
		name, name, rwMarkXattr, origin, name)
}

// markRWLayer marks rw as made by dockerinit from image id.
func markRWLayer(rw, id string) error {
	if err := unix.Lsetxattr(rw, rwMarkXattr, []byte(id), 0); err != nil {
		return fmt.Errorf("mark the rw layer %s as dockerinit's: %w", rw, err)
	}
	return nil
}
