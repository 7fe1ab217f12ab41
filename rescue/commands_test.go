package rescue

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/dockerinit/dockerinit/internal/testenv"
)

// fakeRoot is a /proc, /sys/class/block and /dev stand-in: vda holds a btrfs superblock labelled
// "linux", vdb nothing a probe knows.
func fakeRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	btrfsSB := make([]byte, 0x11000)
	copy(btrfsSB[0x10040:], "_BHRfS_M")
	copy(btrfsSB[0x10020:], []byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef})
	copy(btrfsSB[0x1012b:], "linux")
	files := map[string]string{
		"proc/mounts":                "rootfs / rootfs rw 0 0\nproc /proc proc rw,nosuid 0 0\n",
		"proc/modules":               "btrfs 1900544 0 - Live 0x0000000000000000\nxor 24576 1 btrfs, Live 0x0000000000000000\nraid6_pq 122880 2 btrfs,xor, Live 0x0000000000000000\n",
		"sys/class/block/vda/size":   "136\n",
		"sys/class/block/vdb/size":   "8\n",
		"sys/class/block/loop0/size": "0\n",
		"dev/vda":                    string(btrfsSB),
		"dev/vdb":                    strings.Repeat("\x00", 4096),
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// commandCase is one command line and what the user and the machine see of it.
type commandCase struct {
	name, line string
	sys        *fakeSystem // nil: an empty one
	wantCalls  []string    // what the System was asked, in order
	wantOut    string      // exactly (prompts removed); "-" skips the check
	wantErr    string      // a substring of stderr; "" = nothing on stderr
	wantStatus string      // the exit status printed after the line
}

func runCommandCases(t *testing.T, tests []commandCase) {
	t.Helper()
	root := fakeRoot(t)
	work := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sys := tt.sys
			if sys == nil {
				sys = &fakeSystem{}
			}
			line := strings.ReplaceAll(tt.line, "$ROOT", root)
			s := runShell(t, root, sys, "", "cd "+work+"\n"+line+"\necho status $?\n")
			if s.err != nil {
				t.Fatalf("Run: %v", s.err)
			}
			out := strings.ReplaceAll(stripPrompts(s.out), root, "$ROOT")
			out, status, _ := strings.Cut(out, "status ")
			if want := tt.wantStatus + "\n"; status != want {
				t.Errorf("exit status %q, want %q (stderr %q)", status, want, s.errOut)
			}
			if tt.wantOut != "-" && out != tt.wantOut {
				t.Errorf("output\n%s\nwant\n%s", out, tt.wantOut)
			}
			errOut := strings.ReplaceAll(strings.ReplaceAll(s.errOut, root, "$ROOT"), work, "$WORK")
			if tt.wantErr == "" && errOut != "" || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr %q, want it to contain %q", errOut, tt.wantErr)
			}
			var calls []string
			for _, c := range sys.calls {
				calls = append(calls, strings.ReplaceAll(strings.ReplaceAll(c, root, "$ROOT"), work, "$WORK"))
			}
			if !slices.Equal(calls, tt.wantCalls) {
				t.Errorf("system calls\n%q\nwant\n%q", calls, tt.wantCalls)
			}
		})
	}
}

func TestMount(t *testing.T) {
	runCommandCases(t, []commandCase{
		{name: "type and options given", line: "mount -t btrfs -o subvolid=5,ro,noatime $ROOT/dev/vda /mnt",
			wantCalls: []string{"mount $ROOT/dev/vda /mnt btrfs RDONLY|NOATIME subvolid=5"}, wantStatus: "0"},
		{name: "type read from the superblock", line: "mount $ROOT/dev/vda /mnt",
			wantCalls: []string{"mount $ROOT/dev/vda /mnt btrfs 0 "}, wantStatus: "0"},
		{name: "by label, into a relative directory", line: "mount -r LABEL=linux mnt",
			wantCalls: []string{"mount $ROOT/dev/vda $WORK/mnt btrfs RDONLY "}, wantStatus: "0"},
		{name: "by UUID", line: "mount UUID=12345678-9abc-def0-0123-456789abcdef /mnt",
			wantCalls: []string{"mount $ROOT/dev/vda /mnt btrfs 0 "}, wantStatus: "0"},
		{name: "label not found", line: "mount LABEL=nosuch /mnt",
			wantErr: "mount: no block device has LABEL=nosuch; blkid lists them", wantStatus: "1"},
		{name: "not a device spec", line: "mount FOO=bar /mnt",
			wantErr: `unknown kind "FOO"`, wantStatus: "1"},
		{name: "unknown file system", line: "mount $ROOT/dev/vdb /mnt",
			wantErr: "no file system this shell recognises (btrfs, ext2/3/4, xfs, vfat, iso9660); give its type with -t", wantStatus: "1"},
		{name: "missing device", line: "mount /dev/nosuch /mnt",
			wantErr: "open /dev/nosuch: no such file or directory", wantStatus: "1"},
		{name: "virtual file system", line: "mount -t proc proc /proc",
			wantCalls: []string{"mount proc /proc proc 0 "}, wantStatus: "0"},
		{name: "virtual file system named by its source", line: "mount -o nosuid,size=10m tmpfs /run",
			wantCalls: []string{"mount tmpfs /run tmpfs NOSUID size=10m"}, wantStatus: "0"},
		{name: "remount read-write", line: "mount -o remount,ro,rw /mnt",
			wantCalls: []string{"mount  /mnt  REMOUNT "}, wantStatus: "0"},
		{name: "bind", line: "mount -o bind /a b",
			wantCalls: []string{"mount /a $WORK/b  BIND "}, wantStatus: "0"},
		{name: "module loaded when the kernel does not know the type",
			sys:        &fakeSystem{mountErrs: []error{unix.ENODEV}},
			line:       "mount -t vfat $ROOT/dev/vdb /boot",
			wantCalls:  []string{"mount $ROOT/dev/vdb /boot vfat 0 ", "load fs-vfat", "mount $ROOT/dev/vdb /boot vfat 0 "},
			wantStatus: "0"},
		{name: "module that cannot load",
			sys:       &fakeSystem{mountErrs: []error{unix.ENODEV}, loadErr: errors.New("not bundled")},
			line:      "mount -t vfat $ROOT/dev/vdb /boot",
			wantCalls: []string{"mount $ROOT/dev/vdb /boot vfat 0 ", "load fs-vfat"},
			wantErr:   "file system type vfat is unknown to the kernel, and loading its module failed: not bundled", wantStatus: "1"},
		{name: "mount(2) error explained", sys: &fakeSystem{mountErrs: []error{unix.EINVAL}},
			line:      "mount -o subvol=x $ROOT/dev/vda /mnt",
			wantCalls: []string{"mount $ROOT/dev/vda /mnt btrfs 0 subvol=x"},
			wantErr:   `mount: mount $ROOT/dev/vda on /mnt (type "btrfs", options "subvol=x"): invalid argument`, wantStatus: "1"},
		{name: "no arguments lists the mounts", line: "mount",
			wantOut: "rootfs / rootfs rw 0 0\nproc /proc proc rw,nosuid 0 0\n", wantStatus: "0"},
		{name: "a directory alone without remount", line: "mount /mnt",
			wantErr: "mount: usage: mount [-t TYPE]", wantStatus: "2"},
		{name: "too many arguments", line: "mount a b c",
			wantErr: "mount: usage:", wantStatus: "2"},
		{name: "unknown flag", line: "mount -x a b",
			wantErr: "flag provided but not defined: -x", wantStatus: "2"},
	})
}

func TestLn(t *testing.T) {
	runCommandCases(t, []commandCase{
		{name: "symbolic", line: "echo hi >f && ln -s f s && [ -L s ] && cat s", wantOut: "hi\n", wantStatus: "0"},
		{name: "hard", line: "ln f h && [ f -ef h ] && [ ! -L h ]", wantStatus: "0"},
		{name: "into a directory", line: "mkdir d && ln -s ../f d && [ -L d/f ] && cat d/f", wantOut: "hi\n", wantStatus: "0"},
		{name: "exists", line: "ln -s f s", wantErr: "ln: symlink f $WORK/s: file exists", wantStatus: "1"},
		{name: "replaced with -f", line: "echo new >g && ln -sf g s && cat s", wantOut: "new\n", wantStatus: "0"},
		{name: "one argument", line: "ln f", wantErr: "ln: usage: ln [-s] [-f] TARGET LINK", wantStatus: "2"},
	})
}

func TestUmount(t *testing.T) {
	runCommandCases(t, []commandCase{
		{name: "several", line: "umount /mnt rel", wantCalls: []string{"umount /mnt 0", "umount $WORK/rel 0"}, wantStatus: "0"},
		{name: "lazy and forced", line: "umount -l -f /mnt", wantCalls: []string{"umount /mnt 3"}, wantStatus: "0"},
		{name: "busy", sys: &fakeSystem{umountErr: unix.EBUSY}, line: "umount /mnt",
			wantCalls: []string{"umount /mnt 0"},
			wantErr:   "umount: umount /mnt: device or resource busy (still in use: leave it with cd, or umount -l)", wantStatus: "1"},
		{name: "nothing to unmount", line: "umount", wantErr: "umount: usage: umount [-l] [-f] DIR...", wantStatus: "2"},
	})
}

func TestKernelCommands(t *testing.T) {
	runCommandCases(t, []commandCase{
		{name: "dmesg without priorities", sys: &fakeSystem{log: "<6>[    0.000000] Linux version 6.1\n<12>[    1.5] dockerinit: booting\nno prefix\n<x>kept\n"},
			line: "dmesg", wantOut: "[    0.000000] Linux version 6.1\n[    1.5] dockerinit: booting\nno prefix\n<x>kept\n", wantStatus: "0"},
		{name: "lsmod", line: "lsmod", wantOut: "Module                  Size  Used by\n" +
			"btrfs                1900544  0\n" +
			"xor                    24576  1 btrfs\n" +
			"raid6_pq              122880  2 btrfs,xor\n", wantStatus: "0"},
		{name: "modprobe", line: "modprobe fs-vfat nls_cp437", wantCalls: []string{"load fs-vfat nls_cp437"}, wantStatus: "0"},
		{name: "modprobe failing", sys: &fakeSystem{loadErr: errors.New("the initramfs has no module named x")}, line: "modprobe x",
			wantCalls: []string{"load x"}, wantErr: "modprobe: the initramfs has no module named x", wantStatus: "1"},
		{name: "modprobe without a name", line: "modprobe", wantErr: "modprobe: usage: modprobe NAME...", wantStatus: "2"},
		{name: "reboot", line: "reboot", wantCalls: []string{"reboot restart"}, wantOut: "Rebooting.\n", wantStatus: "0"},
		{name: "poweroff", line: "poweroff", wantCalls: []string{"reboot poweroff"}, wantOut: "Powering off.\n", wantStatus: "0"},
		{name: "reboot takes no argument", line: "reboot now", wantErr: "reboot: usage: reboot", wantStatus: "2"},
	})
}

func TestBlkid(t *testing.T) {
	runCommandCases(t, []commandCase{
		{name: "every device with something to show", line: "blkid",
			wantOut: "$ROOT/dev/vda: LABEL=\"linux\" UUID=\"12345678-9abc-def0-0123-456789abcdef\" TYPE=\"btrfs\"\n", wantStatus: "0"},
		{name: "a device by name, even without a file system", line: "blkid vdb",
			wantOut: "$ROOT/dev/vdb:\n", wantStatus: "0"},
		{name: "a device that is not there", line: "blkid $ROOT/dev/vda nosuch",
			wantOut: "$ROOT/dev/vda: LABEL=\"linux\" UUID=\"12345678-9abc-def0-0123-456789abcdef\" TYPE=\"btrfs\"\n",
			wantErr: "blkid: not every device of $ROOT/dev/vda, nosuch was found", wantStatus: "1"},
	})
}

func TestSubvolumesNeedBtrfs(t *testing.T) {
	runCommandCases(t, []commandCase{
		{name: "not btrfs", line: "btrfs-subvolumes .",
			wantErr: "btrfs-subvolumes: $WORK: not on a btrfs file system (mount one first: mount -t btrfs -o subvolid=5 DEVICE /mnt)", wantStatus: "1"},
		{name: "missing directory", line: "btrfs subvolume list /nosuch",
			wantErr: "statfs /nosuch: no such file or directory", wantStatus: "1"},
		{name: "other btrfs commands", line: "btrfs filesystem show",
			wantErr: "btrfs: usage: btrfs subvolume list DIR", wantStatus: "2"},
	})
}

func TestSubvolumes(t *testing.T) {
	testenv.Root(t, "mount a loop btrfs")
	testenv.Tools(t, "btrfs-progs mount", "mkfs.btrfs", "btrfs", "mount", "umount")
	img := filepath.Join(t.TempDir(), "btrfs.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 128<<20); err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("mkfs.btrfs", "-q", img)
	run("mount", "-o", "loop", img, mnt)
	t.Cleanup(func() { run("umount", "-R", mnt) })
	for _, d := range []string{"plain/dir", "other"} {
		if err := os.MkdirAll(filepath.Join(mnt, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, sv := range []string{"docker_rwlayer", "docker_rwlayer/var/nested", "plain/dir/layer"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(mnt, sv)), 0o755); err != nil {
			t.Fatal(err)
		}
		run("btrfs", "subvolume", "create", filepath.Join(mnt, sv))
	}
	run("mount", "-t", "tmpfs", "tmpfs", filepath.Join(mnt, "other")) // another file system: not walked
	if err := os.Mkdir(filepath.Join(mnt, "other", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := "docker_rwlayer\ndocker_rwlayer/var/nested\nplain/dir/layer\n"
	for _, line := range []string{"btrfs-subvolumes " + mnt, "cd " + mnt + "; btrfs subvolume list .", "btrfs sub li " + mnt} {
		s := runShell(t, t.TempDir(), &fakeSystem{}, "", line+"\n")
		if got := stripPrompts(s.out); got != want || s.errOut != "" {
			t.Errorf("%s: output %q, stderr %q; want %q", line, got, s.errOut, want)
		}
	}
	s := runShell(t, t.TempDir(), &fakeSystem{}, "", "btrfs-subvolumes "+filepath.Join(mnt, "docker_rwlayer")+"\n")
	if got := stripPrompts(s.out); got != "var/nested\n" {
		t.Errorf("below a subvolume: output %q, stderr %q; want %q", got, s.errOut, "var/nested\n")
	}
}

func FuzzParseMountOptions(f *testing.F) {
	f.Add("subvolid=5,ro,noatime")
	f.Add("remount,rw,,compress=zstd:3")
	f.Fuzz(func(t *testing.T, opts string) {
		_, data := parseMountOptions(opts)
		for o := range strings.SplitSeq(data, ",") {
			if _, ok := mountFlags[o]; ok || (o == "" && data != "") {
				t.Fatalf("data %q of %q holds %q, a flag or an empty option", data, opts, o)
			}
		}
	})
}

func FuzzKernelLogLines(f *testing.F) {
	f.Add([]byte("<6>[    0.000000] Linux\n<4>x\n"))
	f.Add([]byte("<>\n<1\n<12>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		lines := kernelLogLines(b)
		if want := strings.Count(strings.TrimRight(string(b), "\n\x00"), "\n") + 1; len(lines) != want && len(lines) != 0 {
			t.Fatalf("%d lines from %q, want %d", len(lines), b, want)
		}
	})
}

func FuzzParseModules(f *testing.F) {
	f.Add("btrfs 1900544 0 - Live 0x0\nxor 24576 1 btrfs, Live 0x0\n")
	f.Add("a b c d\n\n x")
	f.Fuzz(func(t *testing.T, data string) {
		mods, err := parseModules(data)
		for _, m := range mods {
			if m.name == "" || strings.ContainsAny(m.name, " \n") {
				t.Fatalf("module name %q from %q", m.name, data)
			}
		}
		_ = err
	})
}
