package imagestore

// containerdMetaDB is containerd's metadata database, relative to its root.
const containerdMetaDB = "io.containerd.metadata.v1.bolt/meta.db"

// openContainerd opens the images of namespace ns in the containerd root at l. (Being written.)
func openContainerd(l location, ns string) (Store, error) {
	return nil, &UnsupportedError{Store: "the containerd root " + l.shown(), Found: []string{"containerd"}, Fix: "not yet"}
}
