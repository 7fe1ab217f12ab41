package main

import (
	"reflect"
	"testing"
)

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name, modules, fsModule string
		want                    []module
		wantFS                  int
		bad                     bool
	}{
		{name: "two", modules: "/a.ko:;/b.ko:0", fsModule: "1", want: []module{{path: "/a.ko"}, {path: "/b.ko", deps: []int{0}}}, wantFS: 1},
		{name: "file system built in", modules: "/a.ko:", fsModule: "-1", want: []module{{path: "/a.ko"}}, wantFS: -1},
		{name: "forward dependency", modules: "/a.ko:1;/b.ko:", fsModule: "-1", bad: true},
		{name: "no path", modules: ":", fsModule: "-1", bad: true},
		{name: "file system past the list", modules: "/a.ko:", fsModule: "1", bad: true},
		{name: "unset", modules: "", fsModule: "-1", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			modules, fsModule = tc.modules, tc.fsModule
			got, fs, err := plan()
			if tc.bad {
				if err == nil {
					t.Errorf("plan() = %v, %d; want an error", got, fs)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) || fs != tc.wantFS {
				t.Errorf("plan() = %v, %d, %v; want %v, %d", got, fs, err, tc.want, tc.wantFS)
			}
		})
	}
}
