package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"

	"github.com/dockerinit/dockerinit/initramfs"
)

func init() {
	commands["ls"] = command{"list the files of an initramfs, like cpio -tv", runLs}
	commands["cat"] = command{"print one file of an initramfs", runCat}
	commands["unpack"] = command{"unpack an initramfs into a directory", runUnpack}
}

const formats = `FILE is any initramfs the kernel takes: newc cpio archives, plain or compressed with gzip, zstd,
xz or lz4 -l, one after another (Debian's: uncompressed CPU microcode, then the zstd main archive).
`

func runLs(args []string) error {
	fs := newFlags("ls", "Usage: mkbootimg ls FILE\n\nLists every entry: mode, owner, group, size (major, minor for a device), path\nand symlink target; several archives each start with a # line.\n\n"+formats)
	if err := parse(fs, args, 1); err != nil {
		return err
	}
	archives, err := readInitramfs(fs.Arg(0), initramfs.ReadArchives)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(os.Stdout)
	if err := initramfs.List(w, archives); err != nil {
		return err
	}
	return w.Flush()
}

func runCat(args []string) error {
	fs := newFlags("cat", "Usage: mkbootimg cat FILE PATH\n\nWrites the file at PATH (e.g. etc/dockerinit.toml) to stdout as is, following\nsymlinks inside the archive; where archives repeat a path, the last one counts, as for the kernel.\n\n"+formats)
	if err := parse(fs, args, 2); err != nil {
		return err
	}
	entries, err := readInitramfs(fs.Arg(0), initramfs.Read)
	if err != nil {
		return err
	}
	e, err := initramfs.Find(entries, fs.Arg(1))
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	_, err = os.Stdout.Write(e.Data)
	return err
}

func runUnpack(args []string) error {
	fs := newFlags("unpack", "Usage: mkbootimg unpack [--force] FILE DIR\n\nUnpacks every entry under DIR (made if missing) as the invoking user: modes always; owners\nand device nodes only as root (device nodes are otherwise skipped, with a note). Entries with\nabsolute paths, \"..\" or a symlink among their parents are refused: nothing is written outside DIR.\n\n"+formats+"\nFlags:\n")
	force := fs.Bool("force", false, "unpack into DIR even if it is not empty, replacing what the archive also holds")
	if err := parse(fs, args, 2); err != nil {
		return err
	}
	entries, err := readInitramfs(fs.Arg(0), initramfs.Read)
	if err != nil {
		return err
	}
	root := os.Geteuid() == 0
	notes, err := initramfs.Unpack(entries, fs.Arg(1), initramfs.UnpackOptions{Force: *force, Owners: root, Devices: root})
	if errors.Is(err, initramfs.ErrNotEmpty) {
		return fmt.Errorf("%w; pass --force for that", err)
	}
	if err != nil {
		return fmt.Errorf("unpack %s into %s: %w", fs.Arg(0), fs.Arg(1), err)
	}
	for _, n := range notes {
		fmt.Fprintf(os.Stderr, "mkbootimg unpack: %s\n", n)
	}
	return nil
}

// readInitramfs reads file with read (initramfs.Read or ReadArchives), naming file in errors.
func readInitramfs[T any](file string, read func([]byte) (T, error)) (T, error) {
	var zero T
	data, err := os.ReadFile(file)
	if err != nil {
		return zero, err
	}
	v, err := read(data)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", file, err)
	}
	return v, nil
}
