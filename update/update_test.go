package update

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/bootstate"
	"github.com/dockerinit/dockerinit/status"
)

// store is a store whose references name the given IDs.
func store(ids map[string]string) Resolver {
	return func(ref string) (string, error) {
		if id, ok := ids[ref]; ok {
			return id, nil
		}
		for _, id := range ids {
			if id == ref {
				return id, nil // an ID names itself
			}
		}
		return "", fmt.Errorf("no image %q in the store", ref)
	}
}

const (
	idOld = "sha256:1111111111111111"
	idNew = "sha256:2222222222222222"
	idNxt = "sha256:3333333333333333"
)

func TestUpdate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		booted status.Report
		ids    map[string]string
		ref    string
		want   []string
		why    string // a part of Plan.Why
		err    string
	}{
		{"a new tag, the running image its fallback",
			status.Report{Image: "desktop:good", ImageID: idOld}, map[string]string{"desktop:good": idOld, "desktop:new": idNew},
			"desktop:new", []string{"desktop:new", "desktop:good"}, "desktop:new (222222222222) boots next, counted; desktop:good, running now, is its fallback", ""},
		{"the same tag rebuilt: the fallback is the running image's ID",
			status.Report{Image: "desktop:latest", ImageID: idOld}, map[string]string{"desktop:latest": idNew, "old": idOld},
			"desktop:latest", []string{"desktop:latest", idOld}, "is its fallback", ""},
		{"after an update the next update replaces the new image, keeping the running one",
			status.Report{Image: "desktop:good", ImageID: idOld, Images: []string{"desktop:new", "desktop:good"}},
			map[string]string{"desktop:good": idOld, "desktop:new": idNew, "desktop:newer": idNxt},
			"desktop:newer", []string{"desktop:newer", "desktop:good"}, "", ""},
		{"the running image, booted as the fallback, made the default",
			status.Report{Image: "desktop:good", ImageID: idOld, Images: []string{"desktop:new", "desktop:good"}},
			map[string]string{"desktop:good": idOld, "desktop:new": idNew},
			"desktop:good", []string{"desktop:good", "desktop:new"}, "is the image running now (111111111111): it boots next; then desktop:new", ""},
		{"the running image alone", status.Report{Image: "desktop:good", ImageID: idOld}, map[string]string{"desktop:good": idOld},
			"desktop:good", []string{"desktop:good"}, "no fallback", ""},
		{"an image the store does not hold", status.Report{Image: "desktop:good", ImageID: idOld}, map[string]string{"desktop:good": idOld},
			"desktop:typo", nil, "", `the image to update to: no image "desktop:typo" in the store`},
		{"no running image in the report", status.Report{}, map[string]string{"desktop:new": idNew},
			"desktop:new", nil, "", "names no running image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Update(tc.booted, tc.ref, store(tc.ids))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Update: %v, want an error saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.List, tc.want) || !strings.Contains(p.Why, tc.why) {
				t.Errorf("Update(%s) = %q (%s), want %q (saying %q)", tc.ref, p.List, p.Why, tc.want, tc.why)
			}
		})
	}
}

func TestRollback(t *testing.T) {
	ids := map[string]string{"desktop:good": idOld, "desktop:new": idNew}
	counted := bootstate.Record{Images: map[string]*bootstate.Image{"desktop:good": {ID: idOld}, "desktop:new": {ID: idNew, Good: true}}}
	for _, tc := range []struct {
		name   string
		booted status.Report
		rec    bootstate.Record
		ids    map[string]string
		want   []string
		err    error
	}{
		{"the new image runs: the previous one first again",
			status.Report{Image: "desktop:new", ImageID: idNew, Images: []string{"desktop:new", "desktop:good"}}, counted, ids,
			[]string{"desktop:good", "desktop:new"}, nil},
		{"the fallback runs: it becomes the default",
			status.Report{Image: "desktop:good", ImageID: idOld, Images: []string{"desktop:new", "desktop:good"}}, counted, ids,
			[]string{"desktop:good", "desktop:new"}, nil},
		{"the previous tag moved since: its counted ID",
			status.Report{Image: "desktop:new", ImageID: idNew, Images: []string{"desktop:new", "desktop:good"}}, counted,
			map[string]string{"desktop:good": idNxt, "desktop:new": idNew, "x": idOld},
			[]string{idOld, "desktop:new"}, nil},
		{"one image: nothing to roll back to",
			status.Report{Image: "desktop:new", ImageID: idNew}, bootstate.Record{}, ids, nil, ErrNothingToRollBack},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Rollback(tc.booted, tc.rec, store(tc.ids))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Rollback: %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.List, tc.want) {
				t.Errorf("Rollback = %q (%s), want %q", p.List, p.Why, tc.want)
			}
		})
	}
}

func TestRollbackTargetGone(t *testing.T) {
	booted := status.Report{Image: "desktop:new", ImageID: idNew, Images: []string{"desktop:new", "desktop:good"}}
	_, err := Rollback(booted, bootstate.Record{}, store(map[string]string{"desktop:new": idNew}))
	if err == nil || !strings.Contains(err.Error(), "desktop:good") || !strings.Contains(err.Error(), "gone from the store") {
		t.Errorf("Rollback to an image gone from the store: %v", err)
	}
}

// Running a verb again from the same boot gives the same list: the entries then are up to date.
func TestIdempotent(t *testing.T) {
	booted := status.Report{Image: "desktop:good", ImageID: idOld, Images: []string{"desktop:new", "desktop:good"}}
	ids := store(map[string]string{"desktop:good": idOld, "desktop:new": idNew})
	for _, verb := range []func() (Plan, error){
		func() (Plan, error) { return Update(booted, "desktop:new", ids) },
		func() (Plan, error) { return Rollback(booted, bootstate.Record{}, ids) },
	} {
		a, errA := verb()
		b, errB := verb()
		if errA != nil || errB != nil || !slices.Equal(a.List, b.List) {
			t.Errorf("twice: %q, %v; %q, %v", a.List, errA, b.List, errB)
		}
	}
}
