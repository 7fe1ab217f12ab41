package smallfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestRead(t *testing.T) {
	const limit = 64 << 10
	dir := t.TempDir()
	mk := map[string]func(p string) error{
		"small":   func(p string) error { return os.WriteFile(p, []byte("abc"), 0o644) },
		"limit":   func(p string) error { return os.WriteFile(p, make([]byte, limit), 0o644) },
		"over":    func(p string) error { return os.WriteFile(p, make([]byte, limit+1), 0o644) },
		"sparse":  func(p string) error { return errors.Join(os.WriteFile(p, nil, 0o644), os.Truncate(p, 1<<40)) },
		"fifo":    func(p string) error { return unix.Mkfifo(p, 0o644) },
		"zero":    func(p string) error { return os.Symlink("/dev/zero", p) },
		"dir":     func(p string) error { return os.Mkdir(p, 0o755) },
		"link":    func(p string) error { return os.Symlink("small", p) },
		"dangles": func(p string) error { return os.Symlink("nowhere", p) },
	}
	for name, create := range mk {
		if err := create(filepath.Join(dir, name)); err != nil {
			t.Fatalf("make %s: %v", name, err)
		}
	}
	tests := []struct {
		fsys       fs.FS
		name       string
		want       int    // length read
		wantErr    string // the whole message
		isNotExist bool
	}{
		{name: "small", want: 3},
		{name: "limit", want: limit},
		{name: "link", want: 3},
		{name: "over", wantErr: "over is 64 KiB (65537 bytes), more than the 64 KiB such a file may have"},
		{name: "sparse", wantErr: "sparse is 1 TiB (1099511627776 bytes), more than the 64 KiB such a file may have"},
		{name: "fifo", wantErr: "fifo is a named pipe (fifo), not a regular file"},
		{name: "zero", wantErr: "zero is a symbolic link to a character device, not a regular file"},
		{name: "dir", wantErr: "dir is a directory, not a regular file"},
		{name: "missing", isNotExist: true},
		{name: "dangles", isNotExist: true},
		// procfs says 0 bytes and gives more: the read, not the size, catches it.
		{fsys: os.DirFS("/proc"), name: "self/status", wantErr: "self/status grew past the 64 B such a file may have while it was read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys, lim := tt.fsys, int64(limit)
			if fsys == nil {
				fsys = os.DirFS(dir)
			} else {
				lim = 64
			}
			type result struct {
				b   []byte
				err error
			}
			done := make(chan result, 1)
			go func() {
				b, err := Read(fsys, tt.name, lim)
				done <- result{b, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("Read(%s) hangs", tt.name)
			}
			switch {
			case tt.isNotExist:
				if !errors.Is(r.err, fs.ErrNotExist) {
					t.Errorf("Read(%s) = %v, want fs.ErrNotExist", tt.name, r.err)
				}
			case tt.wantErr != "":
				if r.err == nil || r.err.Error() != tt.wantErr {
					t.Errorf("Read(%s) = %v, want %q", tt.name, r.err, tt.wantErr)
				}
			case r.err != nil || len(r.b) != tt.want:
				t.Errorf("Read(%s) = %d bytes, %v; want %d bytes", tt.name, len(r.b), r.err, tt.want)
			}
		})
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1 KiB", 1536: "1.5 KiB", 64 << 20: "64 MiB", 1 << 40: "1 TiB"} {
		if got := size(n); got != want {
			t.Errorf("size(%d) = %q, want %q", n, got, want)
		}
	}
}
