// Package bootstate owns the boot-counting record of a machine: for the images a boot entry lists
// (the new one first, then known-good ones), how many tries each has left, which are marked good,
// which image the last boot switched to, and what happened at past boots. The initramfs picks the
// image to boot from it and takes one try before it switches root; the booted system marks the
// boot good (or bad) in it.
//
// The record is one small JSON file in a folder at the top of the root file system, outside every
// image store, replaced atomically (internal/atomicfile: temp file, fsync, rename, fsync of the
// folder), so that a power cut leaves the old record or the new one. A record that cannot be read
// (truncated, garbage, from a newer dockerinit) is reported and replaced by a fresh one: it must
// never keep a machine from booting, nor send it into a loop.
package bootstate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dockerinit/dockerinit/internal/atomicfile"
	"github.com/dockerinit/dockerinit/internal/smallfile"
)

// Version is the record format this dockerinit writes and reads.
const Version = 1

// Dir is the record's folder, at the top of the root file system.
const Dir = "dockerinit-state"

// maxHistory bounds the past events kept; maxSize what is read.
const (
	maxHistory = 32
	maxSize    = 1 << 20
)

// Record is the boot-counting state of one rw layer's boot entries.
type Record struct {
	Version int               `json:"version"`
	Images  map[string]*Image `json:"images,omitempty"` // by reference, as the list names it
	// Current is the image the last boot switched to on a counted try, until it is marked good
	// or bad: found still set at the next boot, that try failed.
	Current string  `json:"current,omitempty"`
	History []Event `json:"history,omitempty"` // oldest first, at most maxHistory
}

// Image is one image's count.
type Image struct {
	TriesLeft int  `json:"tries_left"`
	Good      bool `json:"good,omitempty"`
	Failures  int  `json:"failures,omitempty"`
	// ID is the image the reference named when it was counted: a tag moved to another image
	// (desktop:latest rebuilt) is counted afresh, never booted as good on the old image's word.
	ID string `json:"id,omitempty"`
}

// Event is one thing that happened at a boot, for people reading `dockerinit status`.
type Event struct {
	Image string `json:"image"`
	What  string `json:"what"`
}

// FileName is the record's name for the rw layer rw: one record per rw layer, as each boot entry
// set of a machine boots into its own.
func FileName(rw string) string {
	return strings.NewReplacer("/", "_", "\\", "_").Replace(rw) + ".json"
}

// DamagedError is a record that could not be read; the caller reports it and goes on with a
// fresh record.
type DamagedError struct {
	Path string
	Err  error
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("boot counting record %s: %v; starting a fresh count (every image of the list gets its tries again)", e.Path, e.Err)
}

func (e *DamagedError) Unwrap() error { return e.Err }

// Load reads the record at path. A missing record is a fresh one; a damaged one is a fresh one
// and a *DamagedError.
func Load(path string) (Record, error) {
	fresh := Record{Version: Version, Images: map[string]*Image{}}
	data, err := smallfile.Read(os.DirFS(filepath.Dir(path)), filepath.Base(path), maxSize)
	if errors.Is(err, fs.ErrNotExist) {
		return fresh, nil
	}
	if err != nil {
		return fresh, &DamagedError{path, err}
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return fresh, &DamagedError{path, fmt.Errorf("not a record: %w", err)}
	}
	switch {
	case r.Version > Version:
		return fresh, &DamagedError{path, fmt.Errorf("written by a newer dockerinit (format %d; this one reads %d)", r.Version, Version)}
	case r.Version < 1:
		return fresh, &DamagedError{path, fmt.Errorf("format %d is no format of dockerinit's", r.Version)}
	}
	if r.Images == nil {
		r.Images = map[string]*Image{}
	}
	for ref, img := range r.Images {
		if img == nil || img.TriesLeft < 0 || img.Failures < 0 {
			return fresh, &DamagedError{path, fmt.Errorf("image %q has a negative or missing count", ref)}
		}
	}
	return r, nil
}

// Save replaces the record at path atomically, making its folder if needed.
func Save(path string, r Record) error {
	r.Version = Version
	if n := len(r.History); n > maxHistory {
		r.History = r.History[n-maxHistory:]
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteSet(filepath.Dir(path), atomicfile.File{Name: filepath.Base(path), Data: append(data, '\n'), Mode: 0o644})
}

// Choice is the image a boot takes from its list, and why.
type Choice struct {
	Ref     string
	Why     string   // e.g. "try 1 of 3", "marked good", "the last image of the list"
	Skipped []string // the images before it that were passed over, each with its reason
	Counted bool     // the boot takes a try of Ref (it is not marked good)
}

// Pick settles the last boot (a try still current failed: the booted system never marked it) and
// chooses the image to boot: the first of list that is in the store (present returns the ID the
// reference names, or an error) and is marked good or has tries left. When none is, the last
// image of the list that is in the store boots anyway, as the known-good one of last resort.
// tries is what a new image gets; 0 turns counting off, and then only an image missing from the
// store is passed over. Images no longer listed are forgotten; a reference that now names
// another image is counted afresh.
func (r *Record) Pick(list []string, tries int, present func(ref string) (id string, err error)) (Choice, error) {
	if r.Images == nil {
		r.Images = map[string]*Image{}
	}
	if cur := r.Current; cur != "" {
		r.Current = ""
		if img := r.Images[cur]; img != nil {
			img.Failures++
			r.note(cur, fmt.Sprintf("did not come up: the boot was never marked good (%d tries left)", img.TriesLeft))
		}
	}
	for ref := range r.Images {
		if !slices.Contains(list, ref) {
			delete(r.Images, ref)
		}
	}
	var c Choice
	var lastPresent string
	var lastErr error
	for _, ref := range list {
		id, err := present(ref)
		if err != nil {
			c.Skipped = append(c.Skipped, ref+" is not in the store")
			lastErr = err
			continue
		}
		lastPresent = ref
		if tries == 0 {
			c.Ref, c.Why = ref, "the first image of the list in the store"
			return c, nil
		}
		img := r.Images[ref]
		if img != nil && img.ID != "" && id != "" && img.ID != id {
			r.note(ref, fmt.Sprintf("now names image %s, not %s: counted afresh", shortID(id), shortID(img.ID)))
			img = nil
		}
		if img == nil {
			img = &Image{TriesLeft: tries}
			r.Images[ref] = img
		}
		if id != "" {
			img.ID = id
		}
		switch {
		case img.Good:
			c.Ref, c.Why = ref, "marked good"
			return c, nil
		case img.TriesLeft > 0:
			c.Ref, c.Why, c.Counted = ref, fmt.Sprintf("try %d of %d", tries-img.TriesLeft+1, tries), true
			return c, nil
		}
		c.Skipped = append(c.Skipped, fmt.Sprintf("%s failed %d boots", ref, img.Failures))
	}
	if lastPresent == "" {
		return c, fmt.Errorf("no image of the list %s is in the store: %w", strings.Join(list, ","), lastErr)
	}
	c.Ref, c.Why = lastPresent, "every image of the list used its tries: the last one boots anyway"
	return c, nil
}

// Try takes one try of the chosen image, before the switch of root.
func (r *Record) Try(c Choice) {
	if !c.Counted {
		return
	}
	img := r.Images[c.Ref]
	img.TriesLeft--
	r.Current = c.Ref
	r.note(c.Ref, "booting, "+c.Why)
}

// MarkGood records that the image booted came up: it is no longer counted.
func (r *Record) MarkGood(ref string) error {
	img := r.Images[ref]
	if img == nil {
		return fmt.Errorf("image %s is not counted in this record (booted without dockerinit.tries, or the list changed)", ref)
	}
	if img.Good && r.Current != ref {
		return nil // idempotent
	}
	img.Good = true
	if r.Current == ref {
		r.Current = ""
	}
	r.note(ref, "marked good")
	return nil
}

// MarkBad records that the image booted is broken: it gets no more tries, and the next boot takes
// the next image of the list.
func (r *Record) MarkBad(ref string) error {
	img := r.Images[ref]
	if img == nil {
		return fmt.Errorf("image %s is not counted in this record (booted without dockerinit.tries, or the list changed)", ref)
	}
	img.TriesLeft, img.Good = 0, false
	img.Failures++
	if r.Current == ref {
		r.Current = ""
	}
	r.note(ref, "marked bad")
	return nil
}

// shortID is an image ID as people read it: the first 12 hex digits.
func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	return id[:min(len(id), 12)]
}

func (r *Record) note(ref, what string) {
	r.History = append(r.History, Event{Image: ref, What: what})
}

// Mark records in the record at path that the boot of ref came up (good) or is broken.
func Mark(path, ref string, good bool) error {
	r, err := Load(path)
	if err != nil {
		return err // a damaged record is the next boot's to replace: marking it would lose that
	}
	if good {
		err = r.MarkGood(ref)
	} else {
		err = r.MarkBad(ref)
	}
	if err != nil {
		return err
	}
	return Save(path, r)
}

// Recount gives ref a fresh count in the record at path, for `mkbootimg update` and `rollback`
// making it the default: one the boots already failed, or marked bad, would otherwise be passed
// over at once; one marked good stays good. It says whether the record changed. A damaged record
// is left to the next boot.
func Recount(path, ref string) (bool, error) {
	r, err := Load(path)
	if err != nil {
		return false, err
	}
	if img, ok := r.Images[ref]; !ok || img.Good {
		return false, nil
	}
	delete(r.Images, ref)
	if r.Current == ref {
		r.Current = "" // its failed try is settled by the fresh count
	}
	r.note(ref, "made the default: counted afresh")
	return true, Save(path, r)
}
