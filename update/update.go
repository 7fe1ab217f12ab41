// Package update owns how a booted machine changes what it boots next: the image list of its
// counted boot entry after `mkbootimg update REF` (REF first, the running image as its fallback)
// and `mkbootimg rollback` (the previous image first again). It computes the list from what booted
// (the init's report) and what the store holds now, and gives the image made the default a fresh
// count in the boot counting record; writing the entry is the bootloader package's work.
package update

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dockerinit/dockerinit/bootstate"
	"github.com/dockerinit/dockerinit/status"
)

// Resolver says which image a reference names in the store: its ID, or an error when the store
// does not hold it.
type Resolver func(ref string) (id string, err error)

// Plan is the list the boot entry is to name, first the image to boot next.
type Plan struct {
	List []string
	// Why says what changes, for the person who ran the verb.
	Why string
}

// ErrNothingToRollBack is a boot whose entry names one image only.
var ErrNothingToRollBack = errors.New("nothing to roll back to")

// Update makes ref the image to boot next, with the running image as its fallback. The fallback
// is named by the reference it booted by while that still names the running image, else by its
// ID: a tag moved since the boot (desktop:latest rebuilt) must not make the fallback the new image.
func Update(r status.Report, ref string, resolve Resolver) (Plan, error) {
	id, err := resolve(ref)
	if err != nil {
		return Plan{}, fmt.Errorf("the image to update to: %w", err)
	}
	if r.Image == "" || r.ImageID == "" {
		return Plan{}, fmt.Errorf("the boot report %s names no running image: update runs in a system dockerinit booted", status.BootJSON)
	}
	fallback := stable(r.Image, r.ImageID, resolve)
	if id == r.ImageID {
		// Already running: it becomes (or stays) the default, the rest of the list after it.
		next := []string{ref}
		for _, other := range append(slices.Clone(r.Images), fallback) {
			if other != r.Image && other != ref && other != fallback && !slices.Contains(next, other) {
				next = append(next, other)
			}
		}
		return Plan{List: next, Why: fmt.Sprintf("%s is the image running now (%s): it boots next; %s", ref, short(id), fallbacks(next[1:]))}, nil
	}
	return Plan{
		List: []string{ref, fallback},
		Why:  fmt.Sprintf("%s (%s) boots next, counted; %s, running now, is its fallback", ref, short(id), fallback),
	}, nil
}

// Rollback makes the previous image of the running boot's list the default again: the second of
// the list when the first is running, else the running image itself (the list's first already
// failed and this boot is its fallback). rec, the boot counting record, gives the IDs the list's
// references named when they were counted, so that a tag moved since then still rolls back to the
// image it named.
func Rollback(r status.Report, rec bootstate.Record, resolve Resolver) (Plan, error) {
	list := r.Images
	if len(list) == 0 {
		list = []string{r.Image}
	}
	target := r.Image
	if r.Image == list[0] {
		if len(list) < 2 {
			return Plan{}, fmt.Errorf("%w: this boot's entry names %s alone (docker_image=); update to an image first, or name the image to go back to with update", ErrNothingToRollBack, r.Image)
		}
		target = list[1]
	}
	ids := map[string]string{r.Image: r.ImageID}
	for ref, img := range rec.Images {
		if img != nil && img.ID != "" && ref != r.Image {
			ids[ref] = img.ID
		}
	}
	next := []string{stable(target, ids[target], resolve)}
	for _, ref := range list {
		if ref != target {
			next = append(next, stable(ref, ids[ref], resolve))
		}
	}
	if _, err := resolve(next[0]); err != nil {
		return Plan{}, fmt.Errorf("the image to roll back to, %s: %w; it is gone from the store (was it pinned? see mkbootimg pins)", next[0], err)
	}
	return Plan{List: next, Why: fmt.Sprintf("%s boots next again; %s", next[0], fallbacks(next[1:]))}, nil
}

// stable is ref while it still names the image id (or id is unknown), else id itself.
func stable(ref, id string, resolve Resolver) string {
	if id == "" {
		return ref
	}
	if got, err := resolve(ref); err == nil && got == id {
		return ref
	}
	return id
}

func fallbacks(refs []string) string {
	if len(refs) == 0 {
		return "no fallback"
	}
	return "then " + strings.Join(refs, ", ")
}

// short is an image ID as people read it.
func short(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	return id[:min(len(id), 12)]
}
