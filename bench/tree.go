package bench

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// filesPerDir keeps directories the size of a real system's (/usr/bin has a few hundred).
const filesPerDir = 100

// WriteTree fills dir with files regular files holding bytes bytes in all: incompressible
// content of sizes spread evenly up to twice the mean, 100 to a directory, two directory
// levels deep. The same seed writes the same tree.
func WriteTree(dir string, files int, bytes int64, seed uint64) error {
	if files <= 0 || bytes < 0 {
		return fmt.Errorf("write tree: want a positive file count and a non-negative size, got %d files, %d bytes", files, bytes)
	}
	sizes := rand.New(rand.NewPCG(seed, 1))
	content := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	mean := bytes / int64(files)
	left := bytes
	buf := bufio.NewWriterSize(nil, 1<<20)
	for i := range files {
		size := min(left, sizes.Int64N(2*mean+1))
		if i == files-1 {
			size = left
		}
		left -= size
		p := filepath.Join(dir, fmt.Sprintf("d%03d", i/(filesPerDir*10)), fmt.Sprintf("s%d", i/filesPerDir%10), fmt.Sprintf("f%05d", i))
		if err := writeRandom(p, size, content, buf); err != nil {
			return fmt.Errorf("write tree %s: %w", dir, err)
		}
	}
	return nil
}

func writeRandom(path string, size int64, r *rand.ChaCha8, buf *bufio.Writer) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf.Reset(f)
	var chunk [4096]byte
	for size > 0 {
		n := min(size, int64(len(chunk)))
		_, _ = r.Read(chunk[:n]) // ChaCha8.Read never fails
		if _, err := buf.Write(chunk[:n]); err != nil {
			f.Close()
			return err
		}
		size -= n
	}
	if err := buf.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
