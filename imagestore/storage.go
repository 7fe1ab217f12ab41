package imagestore

import "io/fs"

// isContainersStorage reports whether fsys is a containers-storage root. (Being written.)
func isContainersStorage(fsys fs.FS) bool { return exists(fsys, "storage.lock") }

// openContainersStorage opens a containers-storage root. (Being written.)
func openContainersStorage(l location) (Store, error) {
	return nil, &UnsupportedError{Store: "the containers-storage root " + l.shown(), Found: []string{"containers-storage"}, Fix: "not yet"}
}
