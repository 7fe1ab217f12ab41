package toplayer

import (
	"fmt"
	"strings"
)

// OCI image-spec whiteouts: .wh.NAME deletes NAME from the layers below,
// .wh..wh..opq hides everything the layers below have in its directory.
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

type kind int

const (
	entry    kind = iota // a file, directory, ... to copy
	whiteout             // deletes target
	opaque               // empties its directory of the image's entries
)

// classify says what the src entry name means.
func classify(name string) (k kind, target string, err error) {
	if !strings.HasPrefix(name, whiteoutPrefix) {
		return entry, "", nil
	}
	if name == opaqueMarker {
		return opaque, "", nil
	}
	target = name[len(whiteoutPrefix):]
	if strings.HasPrefix(target, whiteoutPrefix) {
		return 0, "", fmt.Errorf("%q is a reserved whiteout name (only %s is defined); rename or remove it", name, opaqueMarker)
	}
	if target == "" || target == "." || target == ".." || strings.ContainsAny(target, "/\x00") {
		return 0, "", fmt.Errorf("%q is a whiteout of %q, which is not a file name; rename or remove it", name, target)
	}
	return whiteout, target, nil
}
