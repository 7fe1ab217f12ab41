package bootloader

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestCountedEntry(t *testing.T) {
	btrfs := Volume{FSType: "btrfs", Label: "linux"}
	for _, tc := range []struct {
		name        string
		refs        []string
		tries       int
		cmdline     string
		wantTitle   string
		wantCmdline string
		wantErr     string
	}{
		{name: "new then good", refs: []string{"desktop:new", "desktop:good"}, tries: 3, cmdline: tutorialCmdline,
			wantTitle:   "dockerinit desktop:new (falls back to desktop:good)",
			wantCmdline: tutorialCmdline + " docker_image=desktop:new,desktop:good dockerinit.tries=3"},
		{name: "several to fall back to", refs: []string{"desktop", "desktop:b", "desktop:c"}, tries: 1, cmdline: "rw",
			wantTitle:   "dockerinit desktop:latest (falls back to desktop:b and 1 more)",
			wantCmdline: "rw docker_image=desktop,desktop:b,desktop:c dockerinit.tries=1"},
		{name: "given docker_image and tries replaced, before init's arguments", refs: []string{"a", "b"}, tries: 2,
			cmdline:     "dockerinit.tries=9 docker_image=x rw -- single",
			wantTitle:   "dockerinit a:latest (falls back to b:latest)",
			wantCmdline: "rw docker_image=a,b dockerinit.tries=2 -- single"},
		{name: "one image", refs: []string{"a"}, tries: 2, wantErr: "at least two"},
		{name: "no tries", refs: []string{"a", "b"}, tries: 0, wantErr: "tries 0: want 1 to 100"},
		{name: "too many tries", refs: []string{"a", "b"}, tries: 101, wantErr: "want 1 to 100"},
		{name: "bad fallback", refs: []string{"a", "B!"}, tries: 2, wantErr: `image "B!"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := CountedEntry(tc.refs, tc.tries, btrfs, "/dockerinit/a", tc.cmdline)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("CountedEntry(%q, %d) = %v, want an error containing %q", tc.refs, tc.tries, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			plain, err := ImageEntry(tc.refs[0], btrfs, "/dockerinit/a", tc.cmdline)
			if err != nil {
				t.Fatal(err)
			}
			want := plain
			want.Title, want.Cmdline = tc.wantTitle, tc.wantCmdline
			if e != want {
				t.Errorf("CountedEntry(%q, %d)\n got %+v\nwant %+v", tc.refs, tc.tries, e, want)
			}
		})
	}
}

func TestParseBLSName(t *testing.T) {
	for _, tc := range []struct {
		file string
		want BLSName
		ok   bool
	}{
		{"dockerinit-a-latest.conf", BLSName{ID: "dockerinit-a-latest"}, true},
		{"dockerinit-a-latest+3.conf", BLSName{ID: "dockerinit-a-latest", Counted: true, Left: 3}, true},
		{"dockerinit-a-latest+2-1.conf", BLSName{ID: "dockerinit-a-latest", Counted: true, Left: 2, Done: 1}, true},
		{"dockerinit-a-latest+0-3.conf", BLSName{ID: "dockerinit-a-latest", Counted: true, Left: 0, Done: 3}, true},
		{"dockerinit-a-latest+3-0.conf", BLSName{ID: "dockerinit-a-latest", Counted: true, Left: 3}, true},
		{"a+b+3.conf", BLSName{ID: "a+b", Counted: true, Left: 3}, true}, // the last '+' counts
		{"a+3+x.conf", BLSName{ID: "a+3+x"}, true},                       // no counter right before .conf
		{"a+.conf", BLSName{ID: "a+"}, true},
		{"a+-1.conf", BLSName{ID: "a+-1"}, true},
		{"a+1-.conf", BLSName{ID: "a+1-"}, true},
		{"a+1-2-3.conf", BLSName{ID: "a+1-2-3"}, true},
		{"a+ 1.conf", BLSName{ID: "a+ 1"}, true},
		{"a+99999999999.conf", BLSName{ID: "a+99999999999"}, true}, // past INT_MAX: no counter
		{"a+2147483647.conf", BLSName{ID: "a", Counted: true, Left: 2147483647}, true},
		{"+3.conf", BLSName{ID: "+3"}, true},
		{"a.conf.bak", BLSName{}, false},
		{".conf", BLSName{}, false},
		{"a", BLSName{}, false},
		{"d/a.conf", BLSName{}, false},
	} {
		got, ok := ParseBLSName(tc.file)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseBLSName(%q) = %+v, %v; want %+v, %v", tc.file, got, ok, tc.want, tc.ok)
		}
	}
}

func TestBLSFileAndDefault(t *testing.T) {
	e := Entry{ID: "dockerinit-a-latest"}
	for _, tc := range []struct {
		tries           int
		file, def       string
		matches, misses []string
		wantErr         string
	}{
		{tries: 0, file: "dockerinit-a-latest.conf", def: "dockerinit-a-latest.conf",
			matches: []string{"dockerinit-a-latest.conf"}, misses: []string{"dockerinit-a-latest+3.conf"}},
		{tries: 3, file: "dockerinit-a-latest+3.conf", def: "dockerinit-a-latest[+.]*conf",
			// As systemd-boot names it from its first try to after systemd-bless-boot, in older
			// versions (IDs with counters) and newer ones (without).
			matches: []string{"dockerinit-a-latest+3.conf", "dockerinit-a-latest+2-1.conf", "dockerinit-a-latest+0-3.conf", "dockerinit-a-latest.conf", "DOCKERINIT-A-LATEST+1-2.CONF"},
			misses:  []string{"dockerinit-a-latest-2+3.conf", "dockerinit-a-latest2.conf", "dockerinit-a-latest+3.conf.bak", "dockerinit-a.conf"}},
		{tries: 101, wantErr: "want 1 to 100"},
		{tries: -1, wantErr: "want 1 to 100"},
	} {
		e.SystemdTries = tc.tries
		file, err := BLSFile(e)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("BLSFile(tries %d) = %q, %v; want an error containing %q", tc.tries, file, err, tc.wantErr)
			}
			continue
		}
		if err != nil || file != tc.file {
			t.Errorf("BLSFile(tries %d) = %q, %v; want %q", tc.tries, file, err, tc.file)
		}
		def := BLSDefault(e)
		if def != tc.def {
			t.Errorf("BLSDefault(tries %d) = %q, want %q", tc.tries, def, tc.def)
		}
		for _, m := range tc.matches {
			if !MatchesBLSDefault(def, m) {
				t.Errorf("default %s does not select %s", def, m)
			}
		}
		for _, m := range tc.misses {
			if MatchesBLSDefault(def, m) {
				t.Errorf("default %s selects %s", def, m)
			}
		}
	}
	if _, err := BLSFile(Entry{ID: "a+b"}); err == nil {
		t.Error("BLSFile accepted an ID with a '+', which systemd-boot would read as a counter")
	}
}

// TestInstallBLSCounter: installing a systemd-boot entry replaces its file whatever counter
// systemd-boot or systemd-bless-boot left in its name, leaving one file of the entry.
func TestInstallBLSCounter(t *testing.T) {
	e := entries(t)[2] // on the ESP
	counted := e
	counted.SystemdTries = 3
	for _, tc := range []struct {
		name    string
		entry   Entry
		before  []string // files of the entry in loader/entries
		old     string   // the content of the files before; "" for the entry's own text
		want    string
		changed bool
	}{
		{name: "first install, counted", entry: counted, want: e.ID + "+3.conf", changed: true},
		{name: "counting started again after tries", entry: counted, before: []string{e.ID + "+1-2.conf"}, want: e.ID + "+3.conf", changed: true},
		{name: "counting started again after blessing", entry: counted, before: []string{e.ID + ".conf"}, want: e.ID + "+3.conf", changed: true},
		{name: "counted entry untouched", entry: counted, before: []string{e.ID + "+3.conf"}, want: e.ID + "+3.conf"},
		{name: "counted entry replaced", entry: counted, before: []string{e.ID + "+3.conf"}, old: "title old\nlinux /v\n", want: e.ID + "+3.conf", changed: true},
		{name: "counting turned off", entry: e, before: []string{e.ID + "+0-3.conf"}, want: e.ID + ".conf", changed: true},
		{name: "a crash's leftovers removed", entry: counted, before: []string{e.ID + ".conf", e.ID + "+2-1.conf", e.ID + "+3.conf"}, want: e.ID + "+3.conf", changed: true},
		{name: "a crash's leftovers removed, none of the new name", entry: e, before: []string{e.ID + "+2-1.conf", e.ID + "+3.conf"}, want: e.ID + ".conf", changed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			esp := t.TempDir()
			dir := filepath.Join(esp, "loader", "entries")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			text, err := BLSEntry(tc.entry)
			if err != nil {
				t.Fatal(err)
			}
			old := tc.old
			if old == "" {
				old = text
			}
			// The user's entries, one named like ours but longer, must survive.
			users := map[string]string{"debian.conf": "title Debian\nlinux /vmlinuz\n", e.ID + "-2+3.conf": "title other\nlinux /v\n"}
			for name, body := range users {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, name := range tc.before {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(old), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := Install(Target{Kind: SystemdBoot, ESP: esp}, tc.entry)
			if err != nil {
				t.Fatal(err)
			}
			want := filepath.Join(dir, tc.want)
			if len(got) != 1 || got[0].Path != want || got[0].Changed != tc.changed {
				t.Errorf("Install = %+v; want %s, changed %v", got, want, tc.changed)
			}
			des, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, de := range des {
				names = append(names, de.Name())
			}
			wantNames := []string{"debian.conf", e.ID + "-2+3.conf", tc.want}
			slices.Sort(wantNames)
			if !reflect.DeepEqual(names, wantNames) {
				t.Errorf("loader/entries holds %q, want %q", names, wantNames)
			}
			if b, err := os.ReadFile(want); err != nil || string(b) != text {
				t.Errorf("%s: %q, %v; want %q", tc.want, b, err, text)
			}
			for name, body := range users {
				if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != body {
					t.Errorf("the user's %s changed: %q, %v", name, b, err)
				}
			}
		})
	}
}

// TestInstallRefindLinuxCounted: a refind_linux.conf line is known by its title, so the counted
// entry's line replaces the image's plain one and the other way round.
func TestInstallRefindLinuxCounted(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "refind_linux.conf")
	if err := os.WriteFile(conf, []byte("\"Boot with standard options\" \"root=/dev/sda2 ro\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	vol := Volume{FSType: "btrfs", Label: "linux"}
	plain, err := ImageEntry("a:new", vol, "/d", "rw")
	if err != nil {
		t.Fatal(err)
	}
	counted, err := CountedEntry([]string{"a:new", "a:good"}, 2, vol, "/d", "rw")
	if err != nil {
		t.Fatal(err)
	}
	target := Target{Kind: RefindLinux, Config: conf}
	for _, e := range []Entry{plain, counted, plain} {
		if _, err := Install(target, e); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := ParseRefindLinux(string(b))
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) != 2 || lines[0][0] != "Boot with standard options" || lines[1][0] != e.Title {
			t.Errorf("after installing %q, refind_linux.conf holds %q", e.Title, lines)
		}
	}
}
