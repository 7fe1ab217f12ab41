package modtree

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/dockerinit/dockerinit/imageroot"
	"github.com/dockerinit/dockerinit/kmod/internal/modindex"
)

const kver = "6.1.0-28-amd64"

// fakeModule returns a minimal ELF relocatable file whose .modinfo holds the given "key=value"
// fields, which is all of a module that modtree reads.
func fakeModule(t testing.TB, fields ...string) []byte {
	t.Helper()
	modinfo := []byte(strings.Join(fields, "\x00") + "\x00")
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	const hdr = 64
	shoff := hdr + len(modinfo) + len(shstrtab)
	shoff += (8 - shoff%8) % 8
	var b bytes.Buffer
	h := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Shoff: uint64(shoff), Ehsize: hdr, Shentsize: 64, Shnum: 3, Shstrndx: 2,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	sections := []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Off: hdr, Size: uint64(len(modinfo)), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: uint64(hdr + len(modinfo)), Size: uint64(len(shstrtab)), Addralign: 1},
	}
	binary.Write(&b, binary.LittleEndian, h)
	b.Write(modinfo)
	b.Write(shstrtab)
	b.Write(make([]byte, shoff-b.Len()))
	binary.Write(&b, binary.LittleEndian, sections)
	return b.Bytes()
}

func compress(t *testing.T, ext string, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	switch ext {
	case ".xz":
		w, err := xz.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	case ".zst":
		w, err := zstd.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	case ".gz":
		w := gzip.NewWriter(&b)
		w.Write(data)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	default:
		return data
	}
	return b.Bytes()
}

// fakeMod is one module of the fake tree: where it lives, how it is compressed, its .modinfo.
type fakeMod struct {
	path, ext string
	modinfo   []string
}

var fakeMods = []fakeMod{
	{"kernel/fs/btrfs/btrfs.ko", ".xz", []string{"name=btrfs", "depends=xor,raid6_pq,libcrc32c", "softdep=pre: crc32c", "softdep=post: nosuch", "alias=fs-btrfs", "alias=devname:btrfs-control", "firmware=btrfs/a.bin", "firmware=missing.bin"}},
	{"kernel/crypto/xor.ko", ".zst", []string{"name=xor", "depends="}},
	{"kernel/lib/raid6/raid6_pq.ko", ".gz", []string{"name=raid6_pq", "depends="}},
	{"kernel/lib/libcrc32c.ko", "", []string{"name=libcrc32c", "depends=", "softdep=pre: crc32c"}},
	{"kernel/crypto/crc32c_generic.ko", ".zst", []string{"name=crc32c_generic", "depends=", "alias=crc32c", "alias=crypto-crc32c"}},
	{"kernel/arch/x86/crypto/crc32c-intel.ko", ".xz", []string{"name=crc32c_intel", "depends=", "alias=crc32c", "alias=cpu:type:x86,ven*fam*mod*:feature:*0094*", "firmware=intel/c.bin"}},
	{"kernel/drivers/virtio/virtio_ring.ko", "", []string{"name=virtio_ring", "depends="}},
	{"kernel/drivers/virtio/virtio.ko", "", []string{"name=virtio", "depends=virtio_ring"}},
	{"kernel/drivers/block/virtio_blk.ko", ".zst", []string{"name=virtio_blk", "depends=virtio,virtio_ring", "alias=virtio:d00000002v*"}},
	{"kernel/fs/fat/fat.ko", "", []string{"name=fat", "depends="}},
	{"kernel/fs/fat/vfat.ko", "", []string{"name=vfat", "depends=fat", "alias=fs-vfat"}},
	{"kernel/net/unrelated.ko", "", []string{"name=unrelated", "depends=", "softdep=gcm"}},
	{"kernel/net/act_x.ko", "", []string{"name=act_x", "depends=", "softdep=post: xor"}},
}

// depmod files matching fakeMods, as depmod writes them (modules.dep lists dependencies
// transitively, softdeps one per line).
var depmodFiles = map[string]string{
	"modules.dep": `kernel/fs/btrfs/btrfs.ko.xz: kernel/crypto/xor.ko.zst kernel/lib/raid6/raid6_pq.ko.gz kernel/lib/libcrc32c.ko
kernel/crypto/xor.ko.zst:
kernel/lib/raid6/raid6_pq.ko.gz:
kernel/lib/libcrc32c.ko:
kernel/crypto/crc32c_generic.ko.zst:
kernel/arch/x86/crypto/crc32c-intel.ko.xz:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko.zst: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/fat/fat.ko:
kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko
kernel/net/unrelated.ko:
kernel/net/act_x.ko:
`,
	"modules.softdep": "# Soft dependencies extracted from modules themselves.\nsoftdep btrfs pre: crc32c\nsoftdep btrfs post: nosuch\nsoftdep libcrc32c pre: crc32c\nsoftdep unrelated gcm\nsoftdep act_x post: xor\n",
	"modules.alias": `# Aliases extracted from modules themselves.
alias fs-btrfs btrfs
alias devname:btrfs-control btrfs
alias crc32c crc32c_generic
alias crypto-crc32c crc32c_generic
alias crc32c crc32c_intel
alias cpu:type:x86,ven*fam*mod*:feature:*0094* crc32c_intel
alias virtio:d00000002v* virtio_blk
alias fs-vfat vfat
`,
}

// fakeTree writes an image root with a module tree for kver in usr/lib/modules, its firmware,
// and (withDepmod) the depmod files. It returns the image root and the uncompressed module
// contents.
func fakeTree(t *testing.T, withDepmod bool) (string, map[string][]byte) {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "usr/lib/modules", kver)
	files := map[string][]byte{
		"modules.builtin":                 []byte("kernel/fs/ext4/ext4.ko\nkernel/drivers/input/serio/i8042.ko\n"),
		"modules.builtin.modinfo":         []byte("ext4.alias=fs-ext4\x00ext4.alias=ext3\x00i8042.parm=nopnp:bool\x00"),
		"../../firmware/btrfs/a.bin.zst":  compress(t, ".zst", []byte("firmware a")),
		"../../firmware/intel/c.bin":      []byte("firmware c"),
		"../../firmware/intel/unused.bin": []byte("not named by a bundled module"),
	}
	if withDepmod {
		for n, d := range depmodFiles {
			files[n] = []byte(d)
		}
	}
	plain := map[string][]byte{}
	for _, m := range fakeMods {
		data := fakeModule(t, m.modinfo...)
		plain[m.path] = data
		files[m.path+m.ext] = compress(t, m.ext, data)
	}
	for p, data := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root, plain
}

// openImage opens the image root dir for the test.
func openImage(t *testing.T, dir string) *imageroot.Root {
	t.Helper()
	img, err := imageroot.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

func TestBundle(t *testing.T) {
	const (
		prefix    = "lib/modules/" + kver + "/"
		btrfsPlan = "forced crc32c_generic kernel/crypto/crc32c_generic.ko\n" +
			"forced crc32c_intel kernel/arch/x86/crypto/crc32c-intel.ko\n" +
			"forced libcrc32c kernel/lib/libcrc32c.ko soft:crc32c_generic soft:crc32c_intel\n" +
			"forced raid6_pq kernel/lib/raid6/raid6_pq.ko\n" +
			"forced xor kernel/crypto/xor.ko\n" +
			"forced btrfs kernel/fs/btrfs/btrfs.ko libcrc32c raid6_pq xor soft:crc32c_generic soft:crc32c_intel\n"
		btrfsAliases = "alias fs_btrfs btrfs\nalias devname:btrfs_control btrfs\n" +
			"alias crc32c crc32c_generic\nalias crypto_crc32c crc32c_generic\n" +
			"alias crc32c crc32c_intel\nalias cpu:type:x86,ven*fam*mod*:feature:*0094* crc32c_intel\n"
	)
	btrfsModules := []string{"kernel/arch/x86/crypto/crc32c-intel.ko", "kernel/crypto/crc32c_generic.ko", "kernel/crypto/xor.ko", "kernel/fs/btrfs/btrfs.ko", "kernel/lib/libcrc32c.ko", "kernel/lib/raid6/raid6_pq.ko"}
	btrfsFirmware := map[string]string{"lib/firmware/btrfs/a.bin": "firmware a", "lib/firmware/intel/c.bin": "firmware c"}
	for _, tc := range []struct {
		name         string
		names        []string
		optional     []string
		wantModules  []string
		wantPlan     string // after the header line
		wantAliases  string
		wantFirmware map[string]string
		wantErr      string
	}{
		{
			name: "btrfs with hard, soft and missing soft dependencies", names: []string{"btrfs"},
			wantModules: btrfsModules, wantPlan: btrfsPlan, wantAliases: btrfsAliases, wantFirmware: btrfsFirmware,
		},
		{
			name: "by alias", names: []string{"fs-btrfs"},
			wantModules: btrfsModules, wantPlan: btrfsPlan, wantAliases: btrfsAliases, wantFirmware: btrfsFirmware,
		},
		{
			name: "dash and underscore are equal, built-in by name and alias", names: []string{"virtio-blk", "ext4", "fs-vfat", "ext3"},
			wantModules: []string{"kernel/drivers/block/virtio_blk.ko", "kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko", "kernel/fs/fat/fat.ko", "kernel/fs/fat/vfat.ko"},
			wantPlan: "forced ext4 builtin\n" +
				"forced fat kernel/fs/fat/fat.ko\n" +
				"forced vfat kernel/fs/fat/vfat.ko fat\n" +
				"forced virtio_ring kernel/drivers/virtio/virtio_ring.ko\n" +
				"forced virtio kernel/drivers/virtio/virtio.ko virtio_ring\n" +
				"forced virtio_blk kernel/drivers/block/virtio_blk.ko virtio virtio_ring\n",
			wantAliases: "alias fs_ext4 ext4\nalias ext3 ext4\nalias fs_vfat vfat\nalias virtio:d00000002v* virtio_blk\n",
		},
		{
			name: "absent optional names are skipped", names: []string{"i8042"}, optional: []string{"nvme", "xfs", "fat"},
			wantModules: []string{"kernel/fs/fat/fat.ko"},
			wantPlan:    "forced i8042 builtin\noptional fat kernel/fs/fat/fat.ko\n",
		},
		{
			name: "forced names and what they need, optional the rest", names: []string{"btrfs"}, optional: []string{"btrfs", "xor", "fs-ext4", "vfat", "virtio_blk"},
			wantModules: append(slices.Clone(btrfsModules), "kernel/drivers/block/virtio_blk.ko", "kernel/drivers/virtio/virtio.ko",
				"kernel/drivers/virtio/virtio_ring.ko", "kernel/fs/fat/fat.ko", "kernel/fs/fat/vfat.ko"),
			wantPlan: "optional ext4 builtin\n" + btrfsPlan +
				"optional fat kernel/fs/fat/fat.ko\n" +
				"optional vfat kernel/fs/fat/vfat.ko fat\n" +
				"optional virtio_ring kernel/drivers/virtio/virtio_ring.ko\n" +
				"optional virtio kernel/drivers/virtio/virtio.ko virtio_ring\n" +
				"optional virtio_blk kernel/drivers/block/virtio_blk.ko virtio virtio_ring\n",
			wantAliases:  btrfsAliases + "alias fs_ext4 ext4\nalias ext3 ext4\nalias fs_vfat vfat\nalias virtio:d00000002v* virtio_blk\n",
			wantFirmware: btrfsFirmware,
		},
		{
			name: "a forced module does not wait for an optional module's post: softdep", names: []string{"xor"}, optional: []string{"act_x"},
			wantModules: []string{"kernel/crypto/xor.ko", "kernel/net/act_x.ko"},
			wantPlan:    "optional act_x kernel/net/act_x.ko\nforced xor kernel/crypto/xor.ko\n",
		},
		{
			name: "an optional module comes after an optional module it is a post: softdep of", optional: []string{"act_x"},
			wantModules: []string{"kernel/crypto/xor.ko", "kernel/net/act_x.ko"},
			wantPlan:    "optional act_x kernel/net/act_x.ko\noptional xor kernel/crypto/xor.ko soft:act_x\n",
		},
		{
			name: "an alias that names several modules brings all", names: []string{"crc32c"},
			wantModules:  []string{"kernel/arch/x86/crypto/crc32c-intel.ko", "kernel/crypto/crc32c_generic.ko"},
			wantPlan:     "forced crc32c_generic kernel/crypto/crc32c_generic.ko\nforced crc32c_intel kernel/arch/x86/crypto/crc32c-intel.ko\n",
			wantAliases:  "alias crc32c crc32c_generic\nalias crypto_crc32c crc32c_generic\nalias crc32c crc32c_intel\nalias cpu:type:x86,ven*fam*mod*:feature:*0094* crc32c_intel\n",
			wantFirmware: map[string]string{"lib/firmware/intel/c.bin": "firmware c"},
		},
		{
			name: "a softdep without pre: or post: is ignored", names: []string{"unrelated"},
			wantModules: []string{"kernel/net/unrelated.ko"},
			wantPlan:    "forced unrelated kernel/net/unrelated.ko\n",
		},
		{name: "nothing", wantPlan: ""},
		{
			name: "unknown names", names: []string{"btrfs", "nosuch", "fs-nosuch"}, optional: []string{"other"},
			wantErr: "kernel " + kver + " has no module, alias or built-in named nosuch, fs-nosuch",
		},
	} {
		for _, withDepmod := range []bool{true, false} {
			name := tc.name + map[bool]string{true: ", depmod files", false: ", no depmod files"}[withDepmod]
			t.Run(name, func(t *testing.T) {
				root, plain := fakeTree(t, withDepmod)
				img := openImage(t, root)
				files, err := Bundle(img, "usr/lib/modules", kver, tc.names, tc.optional...)
				if tc.wantErr != "" {
					var ue *UnknownModulesError
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.As(err, &ue) {
						t.Fatalf("err = %v, want an *UnknownModulesError containing %q", err, tc.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !slices.IsSortedFunc(files, func(a, b File) int { return strings.Compare(a.Path, b.Path) }) {
					t.Error("files are not sorted by path")
				}
				got := map[string]File{}
				for _, f := range files {
					if f.Mode != 0o644 {
						t.Errorf("%s: mode %v, want 0644", f.Path, f.Mode)
					}
					got[f.Path] = f
				}
				want := map[string]bool{prefix + "dockerinit.modules": true, prefix + "modules.alias": true}
				for _, m := range tc.wantModules {
					want[prefix+m] = true
					if f, ok := got[prefix+m]; !ok || !bytes.Equal(f.Data, plain[m]) {
						t.Errorf("%s: missing or not the decompressed module", m)
					}
				}
				for p, data := range tc.wantFirmware {
					want[p] = true
					if string(got[p].Data) != data {
						t.Errorf("%s = %q, want %q", p, got[p].Data, data)
					}
				}
				for p := range got {
					if !want[p] {
						t.Errorf("unexpected file %s", p)
					}
				}
				for p := range want {
					if _, ok := got[p]; !ok {
						t.Errorf("missing file %s", p)
					}
				}
				plan := string(got[prefix+"dockerinit.modules"].Data)
				if _, body, _ := strings.Cut(plan, "\n"); body != tc.wantPlan {
					t.Errorf("plan:\n%s\nwant body:\n%s", plan, tc.wantPlan)
				}
				if _, err := modindex.ParsePlan(strings.NewReader(plan)); err != nil {
					t.Errorf("plan does not parse: %v", err)
				}
				if a := string(got[prefix+"modules.alias"].Data); a != tc.wantAliases {
					t.Errorf("modules.alias:\n%s\nwant:\n%s", a, tc.wantAliases)
				}
				again, err := Bundle(img, "usr/lib/modules", kver, tc.names, tc.optional...)
				if err != nil || !reflect.DeepEqual(again, files) {
					t.Errorf("a second Bundle gave other files (err %v)", err)
				}
			})
		}
	}
}

func TestBundleErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(t *testing.T, dir string)
		kver    string
		wantErr string
	}{
		{name: "no such kernel", kver: "6.1.0-99-amd64", wantErr: "kernel 6.1.0-99-amd64 modules:"},
		{name: "no kernel version", kver: "..", wantErr: `kernel version "..": expected a directory name`},
		{
			name: "dependency cycle",
			edit: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "modules.dep"), "kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n")
			},
			wantErr: "dependency cycle a -> b -> a",
		},
		{
			name: "dependency without a module",
			edit: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "modules.dep"), "kernel/a.ko: kernel/b.ko\n")
			},
			wantErr: "module a depends on b, which kernel " + kver + " does not have",
		},
		{
			name: "module file missing",
			edit: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "modules.dep"), "kernel/a.ko:\n")
			},
			wantErr: "module a: open kernel/a.ko: no such file",
		},
		{
			name: "not a module",
			edit: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "modules.dep"), "kernel/a.ko:\n")
				write(t, filepath.Join(dir, "kernel/a.ko"), "#!/bin/sh\n")
			},
			wantErr: "not an ELF kernel module",
		},
		{
			name: "corrupt compressed module",
			edit: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "modules.dep"), "kernel/a.ko.xz:\n")
				write(t, filepath.Join(dir, "kernel/a.ko.xz"), "not xz")
			},
			wantErr: "decompress kernel/a.ko.xz",
		},
		{
			name: "module symlink to a host file resolves in the image, which lacks it",
			edit: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "modules.dep"), "kernel/a.ko:\n")
				os.MkdirAll(filepath.Join(dir, "kernel"), 0o755)
				if err := os.Symlink("/etc/hostname", filepath.Join(dir, "kernel/a.ko")); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "module a: open kernel/a.ko: no such file",
		},
		{
			name: "broken modules.dep",
			edit: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "modules.dep"), "kernel/a.ko kernel/b.ko\n")
			},
			wantErr: "modules.dep line 1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, _ := fakeTree(t, true)
			if tc.edit != nil {
				tc.edit(t, filepath.Join(root, "usr/lib/modules", kver))
			}
			k := kver
			if tc.kver != "" {
				k = tc.kver
			}
			_, err := Bundle(openImage(t, root), "usr/lib/modules", k, []string{"a"})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// TestBundleResolvesInImage builds from images whose links aim at a host folder holding "shadow"
// (standing for the host's /etc), or at other places in the image, with a module "a" that asks
// for firmware "shadow": every link resolves inside the image, as it will once the image is "/".
func TestBundleResolvesInImage(t *testing.T) {
	for _, tc := range []struct {
		name       string
		image      []string // "path -> target" symlinks or "path" files (holding "image path"); $HOST is the host folder
		modulesDir string
		want       string // the bundled lib/firmware/shadow, "" for none
		wantErr    string
	}{
		{
			name:  "firmware folder linked to a host folder",
			image: []string{"usr/lib/firmware -> $HOST"},
		},
		{
			name:  "firmware folder linked to a host folder the image also has",
			image: []string{"usr/lib/firmware -> $HOST", "$HOST/shadow"},
			want:  "image $HOST/shadow",
		},
		{
			name:  "firmware file linked to a host file",
			image: []string{"usr/lib/firmware/shadow -> $HOST/shadow"},
		},
		{
			name:  "firmware file linked out of the image by ..",
			image: []string{"usr/lib/firmware/shadow -> ../../../../../../../../../../$HOST/shadow"},
		},
		{
			name:  "firmware folder linked elsewhere in the image",
			image: []string{"usr/lib/firmware -> /opt/firmware", "opt/firmware/shadow"},
			want:  "image opt/firmware/shadow",
		},
		{
			name:  "firmware file linked absolutely in the image",
			image: []string{"usr/lib/firmware/shadow -> /usr/share/firmware/shadow", "usr/share/firmware/shadow"},
			want:  "image usr/share/firmware/shadow",
		},
		{
			name:       "merged /usr with an absolute lib link",
			image:      []string{"lib -> /usr/lib", "usr/lib/firmware/shadow"},
			modulesDir: "lib/modules",
			want:       "image usr/lib/firmware/shadow",
		},
		{
			name:       "modules folder linked to a host tree",
			image:      []string{"lib -> $HOST/usr/lib"},
			modulesDir: "lib/modules",
			wantErr:    "kernel " + kver + " modules: stat lib/modules/" + kver + ": no such file",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The host folder is a whole module tree too, so that a link into it would build.
			host := withFirmwareModule(t)
			write(t, filepath.Join(host, "shadow"), "host shadow")
			root := withFirmwareModule(t)
			for _, e := range tc.image {
				p, target, link := strings.Cut(strings.ReplaceAll(e, "$HOST", host), " -> ")
				full := filepath.Join(root, p)
				if !link {
					write(t, full, "image "+p)
					continue
				}
				if err := os.RemoveAll(full); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, full); err != nil {
					t.Fatal(err)
				}
			}
			modulesDir := cmp.Or(tc.modulesDir, "usr/lib/modules")
			files, err := Bundle(openImage(t, root), modulesDir, kver, []string{"a"})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, f := range files {
				got[f.Path] = string(f.Data)
				if strings.Contains(string(f.Data), "host shadow") {
					t.Errorf("%s holds the host's file", f.Path)
				}
			}
			if _, ok := got["lib/modules/"+kver+"/kernel/misc/a.ko"]; !ok {
				t.Errorf("module a not bundled: %v", slices.Sorted(maps.Keys(got)))
			}
			want := strings.ReplaceAll(tc.want, "$HOST", host)
			if fw, ok := got["lib/firmware/shadow"]; fw != want || ok != (want != "") {
				t.Errorf("lib/firmware/shadow = %q (bundled %v), want %q", fw, ok, want)
			}
		})
	}
}

// withFirmwareModule returns a fakeTree root whose modules.dep also lists a module "a" asking
// for the firmware "shadow".
func withFirmwareModule(t *testing.T) string {
	t.Helper()
	root, _ := fakeTree(t, true)
	dir := filepath.Join(root, "usr/lib/modules", kver)
	write(t, filepath.Join(dir, "kernel/misc/a.ko"), string(fakeModule(t, "name=a", "depends=", "firmware=shadow")))
	write(t, filepath.Join(dir, "modules.dep"), depmodFiles["modules.dep"]+"kernel/misc/a.ko:\n")
	return root
}

func write(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestParsers(t *testing.T) {
	dep, err := parseDep(strings.NewReader(depmodFiles["modules.dep"]))
	if err != nil {
		t.Fatal(err)
	}
	if got := dep["btrfs"]; got.path != "kernel/fs/btrfs/btrfs.ko.xz" || !reflect.DeepEqual(got.deps, []string{"xor", "raid6_pq", "libcrc32c"}) {
		t.Errorf("modules.dep btrfs = %+v", got)
	}
	if got := dep["crc32c_intel"]; got.path != "kernel/arch/x86/crypto/crc32c-intel.ko.xz" || got.deps != nil {
		t.Errorf("modules.dep crc32c_intel = %+v", got)
	}
	for _, bad := range []string{"kernel/a.ko kernel/b.ko\n", "/lib/modules/x/kernel/a.ko:\n", "../a.ko:\n", "a.ko:\na.ko.xz:\n", "notamodule: x.ko\n"} {
		if _, err := parseDep(strings.NewReader(bad)); err == nil {
			t.Errorf("parseDep(%q) succeeded", bad)
		}
	}

	sd, err := parseSoftdep(strings.NewReader("softdep a pre: b c post: d\nsoftdep a post: e pre: f\nsoftdep x-y gcm\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]softdeps{"a": {pre: []string{"b", "c", "f"}, post: []string{"d", "e"}}, "x_y": {}}; !reflect.DeepEqual(sd, want) {
		t.Errorf("softdeps = %+v, want %+v", sd, want)
	}
	if _, err := parseSoftdep(strings.NewReader("alias a b\n")); err == nil {
		t.Error("parseSoftdep accepted an alias line")
	}

	info := parseModinfo([]byte("name=a\x00\x00alias=x=y\x00noequals\x00=novalue\x00firmware=f.bin\x00\x00\x00"))
	if want := []modinfoField{{"name", "a"}, {"alias", "x=y"}, {"firmware", "f.bin"}}; !reflect.DeepEqual(info, want) {
		t.Errorf("modinfo = %v, want %v", info, want)
	}
	ba := builtinAliases([]byte("ext4.alias=fs-ext4\x00ext4.parm=x\x00crc32c_generic.alias=crc32c\x00.alias=x\x00"))
	if want := []modindex.Alias{{Pattern: "fs_ext4", Module: "ext4"}, {Pattern: "crc32c", Module: "crc32c_generic"}}; !reflect.DeepEqual(ba, want) {
		t.Errorf("builtin aliases = %v, want %v", ba, want)
	}
}

func FuzzParseDep(f *testing.F) {
	f.Add(depmodFiles["modules.dep"])
	f.Fuzz(func(t *testing.T, in string) {
		mods, err := parseDep(strings.NewReader(in))
		if err != nil {
			return
		}
		for name, m := range mods {
			if name == "" || !filepath.IsLocal(m.path) {
				t.Errorf("module %q at %q", name, m.path)
			}
		}
	})
}

func FuzzParseSoftdep(f *testing.F) {
	f.Add(depmodFiles["modules.softdep"])
	f.Fuzz(func(t *testing.T, in string) {
		sds, err := parseSoftdep(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, sd := range sds {
			for _, n := range slices.Concat(sd.pre, sd.post) {
				if n == "pre:" || n == "post:" || n == "" {
					t.Errorf("softdep name %q", n)
				}
			}
		}
	})
}

func FuzzReadModinfo(f *testing.F) {
	f.Add(fakeModule(f, "name=btrfs", "depends=xor", "firmware=a.bin"))
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, in []byte) {
		readModinfo(bytes.NewReader(in))
		builtinAliases(in)
	})
}
