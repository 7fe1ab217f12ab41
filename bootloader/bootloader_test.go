package bootloader

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// tutorialCmdline is the original tutorial's command line.
const tutorialCmdline = "root=LABEL=linux rootflags=subvol=docker_rwlayer rw docker_path=docker toplayer=LABEL=linux toplayer_path=boot_docker"

func TestImageEntry(t *testing.T) {
	btrfs := Volume{FSType: "btrfs", Label: "linux", UUID: "0b7e1c2a-6d3f-4c1e-9a55-3f0e2d1c4b5a"}
	id := strings.Repeat("0123456789abcdef", 4)
	for _, tc := range []struct {
		name, ref, cmdline string
		wantID, wantTitle  string
		wantCmdline        string
		wantErr            string
	}{
		{name: "name gets its tag", ref: "desktop", cmdline: tutorialCmdline,
			wantID: "dockerinit-desktop-latest", wantTitle: "dockerinit desktop:latest", wantCmdline: tutorialCmdline + " docker_image=desktop"},
		{name: "older tag", ref: "desktop:2024-06-01", cmdline: "root=LABEL=linux rootflags=subvol=x",
			wantID: "dockerinit-desktop-2024-06-01", wantTitle: "dockerinit desktop:2024-06-01", wantCmdline: "root=LABEL=linux rootflags=subvol=x docker_image=desktop:2024-06-01"},
		{name: "registry with port", ref: "registry.example:5000/team/os:1.2", cmdline: "root=/dev/sda2",
			wantID: "dockerinit-registry.example-5000-team-os-1.2", wantTitle: "dockerinit registry.example:5000/team/os:1.2", wantCmdline: "root=/dev/sda2 docker_image=registry.example:5000/team/os:1.2"},
		{name: "docker.io prefix dropped", ref: "docker.io/library/debian:12", cmdline: "",
			wantID: "dockerinit-debian-12", wantTitle: "dockerinit debian:12", wantCmdline: "docker_image=docker.io/library/debian:12"},
		{name: "image ID", ref: "sha256:" + id, cmdline: "rw",
			wantID: "dockerinit-sha256-0123456789ab", wantTitle: "dockerinit image sha256:0123456789ab", wantCmdline: "rw docker_image=sha256:" + id},
		{name: "bare image ID", ref: id, cmdline: "rw",
			wantID: "dockerinit-sha256-0123456789ab", wantTitle: "dockerinit image sha256:0123456789ab", wantCmdline: "rw docker_image=" + id},
		{name: "short image ID", ref: "sha256:abcd12", cmdline: "rw",
			wantID: "dockerinit-sha256-abcd12", wantTitle: "dockerinit image sha256:abcd12", wantCmdline: "rw docker_image=sha256:abcd12"},
		{name: "bare ID prefix", ref: "4f1c0e2a", cmdline: "rw", // was titled 4f1c0e2a:latest
			wantID: "dockerinit-sha256-4f1c0e2a", wantTitle: "dockerinit image sha256:4f1c0e2a", wantCmdline: "rw docker_image=4f1c0e2a"},
		{name: "digest", ref: "desktop@sha256:" + id, cmdline: "rw",
			wantID: "dockerinit-desktop-0123456789ab", wantTitle: "dockerinit desktop@sha256:" + id, wantCmdline: "rw docker_image=desktop@sha256:" + id},
		{name: "docker_image of the command line replaced", ref: "b", cmdline: `docker_image=a rw foo="x y"`,
			wantID: "dockerinit-b-latest", wantTitle: "dockerinit b:latest", wantCmdline: `rw foo="x y" docker_image=b`},
		{name: "before init's arguments", ref: "b", cmdline: "rw -- single",
			wantID: "dockerinit-b-latest", wantTitle: "dockerinit b:latest", wantCmdline: "rw docker_image=b -- single"},
		{name: "bad reference", ref: "Desktop!", wantErr: `image "Desktop!"`},
		{name: "bad image ID", ref: "sha256:latest", wantErr: `image "sha256:latest" is not an image ID`}, // was the repository sha256
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ImageEntry(tc.ref, btrfs, "/boot/dockerinit/x", tc.cmdline)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ImageEntry(%q) = %v, want an error containing %q", tc.ref, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := Entry{ID: tc.wantID, Title: tc.wantTitle, Volume: btrfs, Kernel: "/boot/dockerinit/x/vmlinuz",
				Initrd: "/boot/dockerinit/x/initramfs.img", Cmdline: tc.wantCmdline}
			if e != want {
				t.Errorf("ImageEntry(%q)\n got %+v\nwant %+v", tc.ref, e, want)
			}
		})
	}
	if _, err := ImageEntry("desktop", btrfs, "boot/x", ""); err == nil {
		t.Error("a relative kernel directory was accepted")
	}
}

// entries exercises what the boot managers must carry through: a label, a UUID, the ESP, and
// a command line with a quoted value.
func entries(t *testing.T) []Entry {
	t.Helper()
	var out []Entry
	for _, tc := range []struct {
		ref     string
		vol     Volume
		dir     string
		cmdline string
	}{
		{"sample_image", Volume{FSType: "btrfs", Label: "linux"}, "/boot_docker", tutorialCmdline},
		{"desktop:old", Volume{FSType: "ext4", Label: "boot", UUID: "5d1e0c8e-1b0f-4e21-8a5e-2f6f0c6b1d7e"}, "/dockerinit/desktop", "root=UUID=1234 rootflags=subvol=rw,compress=zstd quiet"},
		{"registry:5000/a/b:1", Volume{}, "/dockerinit/b", "root=LABEL=linux rootflags=subvol=rw docker_image=old -- single"},
	} {
		e, err := ImageEntry(tc.ref, tc.vol, tc.dir, tc.cmdline)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestRefindRoundTrip(t *testing.T) {
	var conf strings.Builder
	conf.WriteString("timeout 20\n# the user's own entry\nmenuentry \"Windows\" {\n  loader \\EFI\\Microsoft\\Boot\\bootmgfw.efi\n  submenuentry \"safe\" {\n    options \"x\"\n  }\n}\n")
	want := entries(t)
	for _, e := range want {
		if e.Volume.Label == "" && !e.Volume.IsZero() {
			continue
		}
		s, err := RefindStanza(e)
		if err != nil {
			t.Fatal(err)
		}
		conf.WriteString(s)
	}
	got, err := ParseRefind(conf.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].Title != "Windows" || got[0].Cmdline != "" {
		t.Fatalf("ParseRefind = %+v, want the user's Windows entry (its submenu skipped) and ours", got)
	}
	for i, e := range want {
		// rEFInd names volumes by label only; the file system type is not written.
		e.ID, e.Volume = "", Volume{Label: e.Volume.Label}
		if !reflect.DeepEqual(got[i+1], e) {
			t.Errorf("entry %d read back\n got %+v\nwant %+v", i, got[i+1], e)
		}
	}
}

func TestRefindTutorialEntry(t *testing.T) {
	// The tutorial's stanza, word for word, reads as an entry of the same boot.
	tutorial := "menuentry archlinux-docker {\n  volume linux\n  loader boot_docker/vmlinuz-linux\n  initrd boot_docker/initramfs-linux.img\n  options \"" + tutorialCmdline + "\"\n}\n"
	got, err := ParseRefind(tutorial)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{Title: "archlinux-docker", Volume: Volume{Label: "linux"}, Kernel: "boot_docker/vmlinuz-linux", Initrd: "boot_docker/initramfs-linux.img", Cmdline: tutorialCmdline}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseRefind(tutorial) = %+v, want %+v", got, want)
	}
}

func TestRefindRefuses(t *testing.T) {
	e := Entry{ID: "x", Title: "x", Kernel: "/vmlinuz", Initrd: "/initrd", Cmdline: `root="LABEL=my disk" rw`}
	for name, render := range map[string]func(Entry) (string, error){"refind.conf": RefindStanza, "refind_linux.conf": RefindLinuxLine} {
		if _, err := render(e); err == nil || !strings.Contains(err.Error(), "double quote") || !strings.Contains(err.Error(), "UUID=") {
			t.Errorf("%s: a label with a space on the command line: %v, want an error naming the quote and UUID= instead", name, err)
		}
	}
	e = Entry{ID: "x", Title: `say "hi"`, Kernel: "/vmlinuz"}
	if _, err := RefindStanza(e); err == nil || !strings.Contains(err.Error(), "double quote") || strings.Contains(err.Error(), "UUID=") {
		t.Errorf("a double quote in the title: %v, want an error naming it", err)
	}
	e = Entry{ID: "x", Title: "x", Kernel: "/vmlinuz", Volume: Volume{UUID: "1234-5678"}}
	if _, err := RefindStanza(e); err == nil || !strings.Contains(err.Error(), "no label") {
		t.Errorf("a volume without label: %v, want an error saying rEFInd needs one", err)
	}
}

func TestRefindLinuxLine(t *testing.T) {
	e := entries(t)[0]
	line, err := RefindLinuxLine(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `"dockerinit sample_image:latest" "` + tutorialCmdline + ` docker_image=sample_image initrd=\boot_docker\initramfs.img"` + "\n"
	if line != want {
		t.Errorf("RefindLinuxLine\n got %s\nwant %s", line, want)
	}
	got, err := ParseRefindLinux("# comment\n" + line)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0][0] != e.Title || !strings.HasPrefix(got[0][1], e.Cmdline+" initrd=") {
		t.Errorf("ParseRefindLinux = %q", got)
	}
}

func TestGRUBRoundTrip(t *testing.T) {
	var cfg strings.Builder
	cfg.WriteString("set timeout=5\nmenuentry 'Debian GNU/Linux' --class debian $menuentry_id_option 'gnulinux-simple' {\n\tif [ x$feature_all_video_module = xy ]; then\n\t\tinsmod all_video\n\tfi\n\tlinux /vmlinuz root=/dev/sda1 ro quiet\n\tinitrd /initrd.img\n}\nsubmenu 'Advanced' {\n\tmenuentry 'x' {\n\t\tlinux /y\n\t}\n}\n")
	want := entries(t)
	for _, e := range want {
		s, err := GRUBEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		cfg.WriteString(s)
	}
	got, err := ParseGRUB(cfg.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].Title != "Debian GNU/Linux" || got[0].Cmdline != "root=/dev/sda1 ro quiet" {
		t.Fatalf("ParseGRUB = %+v, want Debian's entry (not the submenu's) then ours", got)
	}
	for i, e := range want {
		if e.Volume.UUID != "" {
			e.Volume.Label = "" // GRUB searches by UUID when it has one
		}
		if !reflect.DeepEqual(got[i+1], e) {
			t.Errorf("entry %d read back\n got %+v\nwant %+v", i, got[i+1], e)
		}
	}
}

func TestGRUBEntryText(t *testing.T) {
	e := entries(t)[0]
	got, err := GRUBEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	want := "menuentry 'dockerinit sample_image:latest' --id dockerinit-sample_image-latest {\n" +
		"\tinsmod part_gpt\n\tinsmod part_msdos\n\tinsmod btrfs\n" +
		"\tsearch --no-floppy --label --set=root linux\n" +
		"\tlinux /boot_docker/vmlinuz " + tutorialCmdline + " docker_image=sample_image\n" +
		"\tinitrd /boot_docker/initramfs.img\n}\n"
	if got != want {
		t.Errorf("GRUBEntry\n got %s\nwant %s", got, want)
	}
	tricky := Entry{ID: "x", Title: "it's", Kernel: "/v mlinuz", Cmdline: `a="b c" $x`}
	got, err = GRUBEntry(tricky)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, `menuentry 'it'\''s'`) || !strings.Contains(got, `linux '/v mlinuz' 'a="b c"' '$x'`) {
		t.Errorf("GRUBEntry did not quote the title, path and arguments:\n%s", got)
	}
	back, err := ParseGRUB(got)
	if err != nil || len(back) != 1 || back[0].Title != "it's" || back[0].Kernel != "/v mlinuz" || back[0].Cmdline != tricky.Cmdline {
		t.Errorf("ParseGRUB of the quoted entry = %+v, %v", back, err)
	}
}

func TestBLSRoundTrip(t *testing.T) {
	e := entries(t)[2]
	text, err := BLSEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseBLS(e.ID, "# comment\n"+text)
	if err != nil {
		t.Fatal(err)
	}
	if got != e {
		t.Errorf("ParseBLS\n got %+v\nwant %+v", got, e)
	}
	if _, err := BLSEntry(entries(t)[0]); err == nil || !strings.Contains(err.Error(), "only from the ESP") {
		t.Errorf("BLSEntry of a kernel on btrfs: %v, want an error saying systemd-boot reads only the ESP", err)
	}
}

func TestParseKind(t *testing.T) {
	for in, want := range map[string]Kind{"rEFInd": Refind, "grub2": GRUB, "systemd-boot": SystemdBoot, "sd-boot": SystemdBoot, "refind_linux": RefindLinux} {
		if got, err := ParseKind(in); err != nil || got != want {
			t.Errorf("ParseKind(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseKind("lilo"); err == nil || !strings.Contains(err.Error(), "refind, refind-linux, grub, systemd-boot") {
		t.Errorf("ParseKind(lilo) = %v, want the known names listed", err)
	}
}

func TestSetBlock(t *testing.T) {
	user := "timeout 20\r\n# keep me\nmenuentry \"Windows\" {\n}\n"
	for _, tc := range []struct {
		name, conf string
		wantErr    string
	}{
		{"empty file", "", ""},
		{"no final newline", "timeout 20", ""},
		{"user lines with CRLF", user, ""},
		{"unterminated", user + "# >>> dockerinit-a\nmenuentry \"x\" {\n}\n", "no \"# <<< dockerinit-a\" line"},
		{"twice", "# >>> dockerinit-a\n# <<< dockerinit-a\n# >>> dockerinit-a\n# <<< dockerinit-a\n", "begins twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			once, err := SetBlock(tc.conf, "dockerinit-a", "menuentry \"a\" {\n}\n")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("SetBlock = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(once, tc.conf) {
				t.Errorf("the user's lines changed:\n%q\nis not a prefix of\n%q", tc.conf, once)
			}
			twice, err := SetBlock(once, "dockerinit-a", "menuentry \"a\" {\n}\n")
			if err != nil || twice != once {
				t.Errorf("setting the same block again changed the file:\n%q\n%q (%v)", once, twice, err)
			}
			other, err := SetBlock(twice, "dockerinit-b", "menuentry \"b\" {\n}\n")
			if err != nil {
				t.Fatal(err)
			}
			updated, err := SetBlock(other, "dockerinit-a", "menuentry \"a2\" {\n}\n")
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseRefind(updated)
			if err != nil {
				t.Fatal(err)
			}
			var titles []string
			for _, e := range got {
				titles = append(titles, e.Title)
			}
			want := []string{"a2", "b"}
			if strings.Contains(tc.conf, "Windows") {
				want = []string{"Windows", "a2", "b"}
			}
			if !reflect.DeepEqual(titles, want) {
				t.Errorf("entries after replacing a: %q, want %q (a replaced in place)", titles, want)
			}
		})
	}
}

// TestConcurrentInstalls: installs running at once into one refind.conf each keep the others'
// entries (each reads the file, adds its block and renames a new file over it).
func TestConcurrentInstalls(t *testing.T) {
	esp := t.TempDir()
	conf := filepath.Join(esp, "EFI", "refind", "refind.conf")
	if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("timeout 20\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var want []string
	var wg sync.WaitGroup
	for i := range 16 {
		e := entries(t)[0]
		e.ID, e.Title = fmt.Sprintf("dockerinit-%d", i), fmt.Sprintf("image %d", i)
		want = append(want, e.Title)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := Install(Target{Kind: Refind, ESP: esp}, e); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	got := parseTitles(ParseRefind)(t, string(b))
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("refind.conf after 16 installs at once lists %q, want %q", got, want)
	}
}

func TestInstall(t *testing.T) {
	e := entries(t)
	sd := e[2] // on the ESP
	for _, tc := range []struct {
		name   string
		kind   Kind
		setup  func(esp string) Target
		entry  Entry
		user   string // the file's contents before, "" for none
		file   func(esp string) string
		parse  func(t *testing.T, text string) []string
		titles []string
	}{
		{name: "rEFInd", kind: Refind, entry: e[0],
			setup: func(esp string) Target { return Target{Kind: Refind, ESP: esp} },
			file:  func(esp string) string { return filepath.Join(esp, "EFI", "refind", "refind.conf") },
			user:  "timeout 20\nmenuentry \"Arch\" {\n  loader /vmlinuz-linux\n}\n",
			parse: parseTitles(ParseRefind), titles: []string{"Arch", "dockerinit sample_image:latest"}},
		{name: "GRUB custom.cfg created", kind: GRUB, entry: e[1],
			setup: func(esp string) Target { return Target{Kind: GRUB, Config: filepath.Join(esp, "grub", "custom.cfg")} },
			file:  func(esp string) string { return filepath.Join(esp, "grub", "custom.cfg") },
			parse: parseTitles(ParseGRUB), titles: []string{"dockerinit desktop:old"}},
		{name: "GRUB custom.cfg kept", kind: GRUB, entry: e[1],
			setup: func(esp string) Target { return Target{Kind: GRUB, Config: filepath.Join(esp, "grub", "custom.cfg")} },
			file:  func(esp string) string { return filepath.Join(esp, "grub", "custom.cfg") },
			user:  "menuentry 'Memtest' {\n\tlinux16 /memtest86+.bin\n}\n",
			parse: parseTitles(ParseGRUB), titles: []string{"Memtest", "dockerinit desktop:old"}},
		{name: "refind_linux.conf", kind: RefindLinux, entry: e[0],
			setup: func(esp string) Target {
				return Target{Kind: RefindLinux, Config: filepath.Join(esp, "refind_linux.conf")}
			},
			file: func(esp string) string { return filepath.Join(esp, "refind_linux.conf") },
			user: "\"Boot with standard options\" \"root=/dev/sda2 ro\"\n",
			parse: func(t *testing.T, text string) []string {
				lines, err := ParseRefindLinux(text)
				if err != nil {
					t.Fatal(err)
				}
				var titles []string
				for _, l := range lines {
					titles = append(titles, l[0])
				}
				return titles
			}, titles: []string{"Boot with standard options", "dockerinit sample_image:latest"}},
		{name: "systemd-boot", kind: SystemdBoot, entry: sd,
			setup: func(esp string) Target { return Target{Kind: SystemdBoot, ESP: esp} },
			file:  func(esp string) string { return filepath.Join(esp, "loader", "entries", sd.ID+".conf") },
			parse: func(t *testing.T, text string) []string {
				got, err := ParseBLS(sd.ID, text)
				if err != nil {
					t.Fatal(err)
				}
				return []string{got.Title}
			}, titles: []string{sd.Title}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			esp := t.TempDir()
			for _, d := range []string{"EFI/refind", "grub", "loader/entries"} {
				if err := os.MkdirAll(filepath.Join(esp, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			// The user's other entry of the same kind, which must survive.
			userEntry := filepath.Join(esp, "loader", "entries", "debian.conf")
			if err := os.WriteFile(userEntry, []byte("title Debian\nlinux /vmlinuz\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			file := tc.file(esp)
			switch {
			case tc.user != "":
				if err := os.WriteFile(file, []byte(tc.user), 0o600); err != nil {
					t.Fatal(err)
				}
			case tc.kind == Refind:
				t.Fatal("rEFInd needs a refind.conf")
			}
			target := tc.setup(esp)
			got, err := Install(target, tc.entry)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Path != file || !got[0].Changed {
				t.Fatalf("Install = %+v; want %s written", got, file)
			}
			text, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(text), tc.user) {
				t.Errorf("the user's lines changed:\n%s", text)
			}
			if got := tc.parse(t, string(text)); !reflect.DeepEqual(got, tc.titles) {
				t.Errorf("entries in %s: %q, want %q", file, got, tc.titles)
			}
			if tc.user != "" {
				if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("the file's mode: %v, %v; want the user's 0600 kept", fi.Mode(), err)
				}
			}
			before, _ := os.Stat(file)
			time.Sleep(10 * time.Millisecond)
			if got, err := Install(target, tc.entry); err != nil || len(got) != 1 || got[0].Changed {
				t.Errorf("a second install: %+v, %v; want nothing changed", got, err)
			}
			after, _ := os.Stat(file)
			if !after.ModTime().Equal(before.ModTime()) || !os.SameFile(before, after) {
				t.Errorf("a second install rewrote %s", file)
			}
			if b, err := os.ReadFile(userEntry); err != nil || string(b) != "title Debian\nlinux /vmlinuz\n" {
				t.Errorf("the user's systemd-boot entry changed: %q, %v", b, err)
			}
			left, _ := filepath.Glob(filepath.Join(filepath.Dir(file), ".*"))
			if len(left) > 0 {
				t.Errorf("temporary files left: %q", left)
			}
		})
	}
}

// TestInstallSeveral: entries sharing a file go into it together, each reported changed or not by
// itself; systemd-boot's get a file each. (That a file is replaced once for all its entries, so a
// crash leaves them all old or all new, is TestKilledRunsLeaveWholeFiles' in cmd/mkbootimg.)
func TestInstallSeveral(t *testing.T) {
	e := entries(t)
	latest, old := e[2], e[2]
	old.ID, old.Title, old.Cmdline = "dockerinit-b-old", "dockerinit b:old", "root=LABEL=linux docker_image=b:old"
	for _, tc := range []struct {
		name  string
		kind  Kind
		files []string // relative to the ESP, one per entry
	}{
		{"GRUB", GRUB, []string{"custom.cfg", "custom.cfg"}},
		{"rEFInd", Refind, []string{"EFI/refind/refind.conf", "EFI/refind/refind.conf"}},
		{"systemd-boot", SystemdBoot, []string{"loader/entries/" + latest.ID + ".conf", "loader/entries/" + old.ID + ".conf"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			esp := t.TempDir()
			for _, d := range []string{"EFI/refind", "loader/entries"} {
				if err := os.MkdirAll(filepath.Join(esp, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(esp, "EFI", "refind", "refind.conf"), []byte("timeout 20\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			target := Target{Kind: tc.kind, ESP: esp, Config: filepath.Join(esp, "custom.cfg")}
			if tc.kind == Refind {
				target.Config = ""
			}
			for _, step := range []struct {
				old     Entry
				changed []bool
			}{
				{old, []bool{true, true}},   // both new
				{old, []bool{false, false}}, // again: nothing changes
				{func() Entry { o := old; o.Cmdline += " quiet"; return o }(), []bool{false, true}},
			} {
				got, err := Install(target, latest, step.old)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 2 {
					t.Fatalf("Install = %+v, want the two entries", got)
				}
				for i, in := range got {
					if want := filepath.Join(esp, filepath.FromSlash(tc.files[i])); in.Path != want || in.Changed != step.changed[i] {
						t.Errorf("entry %d: %s changed %v, want %s changed %v", i, in.Path, in.Changed, want, step.changed[i])
					}
				}
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(filepath.Join(esp, tc.files[0])), ".*")); len(left) > 0 {
				t.Errorf("temporary files left: %q", left)
			}
		})
	}
}

func parseTitles(parse func(string) ([]Entry, error)) func(*testing.T, string) []string {
	return func(t *testing.T, text string) []string {
		t.Helper()
		got, err := parse(text)
		if err != nil {
			t.Fatal(err)
		}
		var titles []string
		for _, e := range got {
			titles = append(titles, e.Title)
		}
		return titles
	}
}

func TestInstallRefusesMissingBootManager(t *testing.T) {
	esp := t.TempDir()
	e := entries(t)
	for _, tc := range []struct {
		name string
		t    Target
		e    Entry
		want string
	}{
		{"no refind.conf", Target{Kind: Refind, ESP: esp}, e[0], "no refind.conf under the ESP"},
		{"no systemd-boot", Target{Kind: SystemdBoot, ESP: esp}, e[2], "bootctl install"},
		{"GRUB without a file", Target{Kind: GRUB}, e[0], "--bootloader-config"},
		{"systemd-boot entry on btrfs", Target{Kind: SystemdBoot, ESP: esp}, e[0], "bootctl install"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Install(tc.t, tc.e); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Install = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if err := os.MkdirAll(filepath.Join(esp, "loader"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(Target{Kind: SystemdBoot, ESP: esp}, e[0]); err == nil || !strings.Contains(err.Error(), "only from the ESP") {
		t.Errorf("systemd-boot entry for a kernel on btrfs: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(esp, "loader", "entries", "*")); len(m) > 0 {
		t.Errorf("a refused install wrote %q", m)
	}
}

func TestLocateIn(t *testing.T) {
	const mountinfo = `22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:30 /@docker /var/lib/docker rw,relatime shared:2 - btrfs /dev/sdb2 rw,subvol=/@docker
31 22 8:1 / /boot/efi rw shared:3 - vfat /dev/sda15 rw
32 22 0:31 /top /mnt/my\040disk rw - btrfs /dev/sdc rw
33 22 0:32 / /mnt/over rw - tmpfs tmpfs rw
34 22 0:33 / /mnt/over rw - btrfs /dev/sdd rw
garbage line
`
	for _, tc := range []struct {
		abs, path, mount, source, fstype string
	}{
		{"/var/lib/docker", "/@docker", "/var/lib/docker", "/dev/sdb2", "btrfs"},
		{"/var/lib/docker/btrfs/subvolumes", "/@docker/btrfs/subvolumes", "/var/lib/docker", "/dev/sdb2", "btrfs"},
		{"/var/lib/dockerx", "/var/lib/dockerx", "/", "/dev/sda1", "ext4"},
		{"/boot/efi/dockerinit/desktop", "/dockerinit/desktop", "/boot/efi", "/dev/sda15", "vfat"},
		{"/mnt/my disk/boot", "/top/boot", "/mnt/my disk", "/dev/sdc", "btrfs"},
		{"/mnt/over/x", "/x", "/mnt/over", "/dev/sdd", "btrfs"}, // the last mount over a path wins
	} {
		loc, err := LocateIn(mountinfo, tc.abs)
		if err != nil {
			t.Errorf("LocateIn(%s): %v", tc.abs, err)
			continue
		}
		if loc.Path != tc.path || loc.Mount != tc.mount || loc.Source != tc.source || loc.Volume.FSType != tc.fstype {
			t.Errorf("LocateIn(%s) = %+v, want path %s on %s (%s %s)", tc.abs, loc, tc.path, tc.mount, tc.source, tc.fstype)
		}
	}
	if _, err := LocateIn("garbage\n", "/x"); err == nil {
		t.Error("LocateIn found a mount in a table without any")
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{`/mnt/my\040disk`: "/mnt/my disk", `a\134b`: `a\b`, `trail\04`: `trail\04`, `x\999`: `x\999`} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestUKIEntry writes an entry that starts a UKI for each boot manager: GRUB chain-loads it,
// rEFInd loads it with no options, and the two that need an entry read it back; systemd-boot and
// refind_linux.conf refuse, saying why.
func TestUKIEntry(t *testing.T) {
	e := Entry{ID: "dockerinit-desktop-latest", Title: "dockerinit desktop:latest", Volume: Volume{UUID: "1234-ABCD", Label: "ESP", FSType: "vfat"},
		Kernel: "/EFI/Linux/dockerinit-desktop-latest.efi", UKI: true}
	for _, tc := range []struct {
		name  string
		write func(Entry) (string, error)
		want  string // the text, or the error
		parse func(string) ([]Entry, error)
		back  Entry
	}{
		{"grub", GRUBEntry, "menuentry 'dockerinit desktop:latest' --id dockerinit-desktop-latest {\n" +
			"\tinsmod part_gpt\n\tinsmod part_msdos\n\tinsmod fat\n\tsearch --no-floppy --fs-uuid --set=root 1234-ABCD\n" +
			"\tinsmod chain\n\tchainloader /EFI/Linux/dockerinit-desktop-latest.efi\n}\n",
			ParseGRUB, Entry{ID: e.ID, Title: e.Title, Volume: Volume{UUID: "1234-ABCD", FSType: "vfat"}, Kernel: e.Kernel, UKI: true}},
		{"refind", RefindStanza, "menuentry \"dockerinit desktop:latest\" {\n  volume ESP\n  loader /EFI/Linux/dockerinit-desktop-latest.efi\n}\n",
			ParseRefind, Entry{Title: e.Title, Volume: Volume{Label: "ESP"}, Kernel: e.Kernel}},
		{"systemd-boot", BLSEntry, "systemd-boot lists the UKIs in ESP/EFI/Linux/ by itself", nil, Entry{}},
		{"refind_linux.conf", RefindLinuxLine, "a UKI takes none: use --bootloader refind", nil, Entry{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.write(e)
			if tc.parse == nil {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %q, %v; want an error containing %q", got, err, tc.want)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want\n%s", got, err, tc.want)
			}
			back, err := tc.parse(got)
			if err != nil || len(back) != 1 || !reflect.DeepEqual(back[0], tc.back) {
				t.Errorf("read back %+v, %v; want %+v", back, err, tc.back)
			}
		})
	}
	withLine := e
	withLine.Cmdline = "init=/bin/sh"
	if _, err := GRUBEntry(withLine); err == nil || !strings.Contains(err.Error(), "an entry gives neither") {
		t.Errorf("a UKI entry with a command line: %v, want it refused", err)
	}
}
