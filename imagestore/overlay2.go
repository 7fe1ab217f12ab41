package imagestore

// openOverlay2 opens Docker's overlay2 graph driver store. (Being written.)
func openOverlay2(l location) (Store, error) {
	return nil, &UnsupportedError{Store: "the Docker data root " + l.shown(), Found: []string{"the overlay2 storage driver"}, Fix: "not yet"}
}
