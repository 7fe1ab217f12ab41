package pin

import (
	"encoding/json"
	"fmt"
	"strings"
)

// inspected is the part of `docker container inspect` and `podman container inspect` that a
// pin is read from; both print a JSON array of these.
type inspected struct {
	ID     string `json:"Id"`
	Name   string // Docker: "/name"; podman: "name"
	Image  string // the image ID (podman without "sha256:")
	Config struct {
		Labels map[string]string
	}
}

// parseInspect reads the pins out of a container inspect array. A container without
// dockerinit's label or name prefix is not a pin, and is left out.
func parseInspect(out []byte) ([]Pinned, error) {
	var cs []inspected
	if err := json.Unmarshal(out, &cs); err != nil {
		return nil, fmt.Errorf("reading container inspect's output: %w; expected a JSON array of containers", err)
	}
	var pins []Pinned
	for _, c := range cs {
		name := strings.TrimPrefix(c.Name, "/")
		ref := c.Config.Labels[LabelRef]
		if ref == "" || !strings.HasPrefix(name, containerPrefix) {
			continue
		}
		// The container's own image is what the daemon honours; the label is what was meant.
		id := c.Image
		if id == "" {
			id = c.Config.Labels[LabelImage]
		}
		pins = append(pins, Pinned{Ref: ref, ImageID: id, Name: name})
	}
	return pins, nil
}

// tableImage is one row of `ctr images ls`.
type tableImage struct {
	name, digest string
	labels       map[string]string
}

// parseImageTable reads `ctr images ls`: a header, then one image a line, columns REF TYPE
// DIGEST SIZE PLATFORMS LABELS padded with spaces. SIZE is two words ("11.3 KiB") and
// PLATFORMS may be empty, so the digest is the first sha256: column and the labels the last
// column, "-" or k=v,k=v. A line that does not fit is skipped.
func parseImageTable(out []byte) []tableImage {
	var imgs []tableImage
	for i, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 3 {
			continue
		}
		img := tableImage{name: f[0]}
		for _, c := range f[1:] {
			if strings.HasPrefix(c, "sha256:") {
				img.digest = c
				break
			}
		}
		if img.digest == "" {
			continue
		}
		if last := f[len(f)-1]; last != img.digest && strings.Contains(last, "=") {
			img.labels = map[string]string{}
			for _, kv := range strings.Split(last, ",") {
				if k, v, ok := strings.Cut(kv, "="); ok {
					img.labels[k] = v
				}
			}
		}
		imgs = append(imgs, img)
	}
	return imgs
}
