package modtree

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// compressions are the suffixes distributions compress modules and firmware with.
var compressions = []string{".zst", ".xz", ".gz"}

// stripCompression returns p without a compression suffix.
func stripCompression(p string) string {
	for _, ext := range compressions {
		if s, ok := strings.CutSuffix(p, ext); ok {
			return s
		}
	}
	return p
}

// decompressor reads files decompressed by their suffix. One zstd decoder is shared: its
// DecodeAll is safe to call from many goroutines.
type decompressor struct {
	zstd *zstd.Decoder
}

func newDecompressor() (*decompressor, error) {
	z, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return &decompressor{zstd: z}, nil
}

func (d *decompressor) Close() { d.zstd.Close() }

// read returns the contents of p in dir, decompressed if p ends in .zst, .xz or .gz.
func (d *decompressor) read(dir fs.FS, p string) ([]byte, error) {
	b, err := fs.ReadFile(dir, p)
	if err != nil {
		return nil, err
	}
	return d.decompress(p, b)
}

func (d *decompressor) decompress(p string, b []byte) ([]byte, error) {
	var out []byte
	var err error
	switch {
	case strings.HasSuffix(p, ".zst"):
		out, err = d.zstd.DecodeAll(b, nil)
	case strings.HasSuffix(p, ".xz"):
		var r *xz.Reader
		if r, err = xz.NewReader(bytes.NewReader(b)); err == nil {
			out, err = io.ReadAll(r)
		}
	case strings.HasSuffix(p, ".gz"):
		var r *gzip.Reader
		if r, err = gzip.NewReader(bytes.NewReader(b)); err == nil {
			out, err = io.ReadAll(r)
		}
	default:
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", p, err)
	}
	return out, nil
}

// modinfo returns the .modinfo fields of the module p in dir. An uncompressed module is read in
// place: only its section headers and .modinfo, not the whole file.
func (d *decompressor) modinfo(dir fs.FS, p string) ([]modinfoField, error) {
	if stripCompression(p) != p {
		b, err := d.read(dir, p)
		if err != nil {
			return nil, err
		}
		return readModinfo(bytes.NewReader(b))
	}
	f, err := dir.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// An image's files (imageroot) are *os.File.
	r, ok := f.(io.ReaderAt)
	if !ok {
		return nil, fmt.Errorf("%s: its file system cannot read .modinfo in place (no ReadAt)", p)
	}
	return readModinfo(r)
}

// parallel runs f(0) ... f(n-1) on as many goroutines as there are CPUs and returns the error of
// the lowest i that failed, so the error does not depend on scheduling.
func parallel(n int, f func(i int) error) error {
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(n, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for i := range next {
				errs[i] = f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
