// Command gentar writes the synthetic layer tars that scripts/bench.sh
// times: many small files, one large file, a deep tree and many hardlinks.
// The output is deterministic (fixed seed, fixed times) so that cached
// inputs stay comparable from run to run.
//
//	go run ./scripts/bench/gentar -kind small -o small.tar
package main

import (
	"archive/tar"
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"
)

var mtime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

func main() {
	kind := flag.String("kind", "", "small | big | deep | hardlinks")
	out := flag.String("o", "", "output file")
	files := flag.Int("files", 50000, "files for -kind small")
	bigSize := flag.Int64("size", 1<<30, "file size for -kind big")
	prefix := flag.String("prefix", "usr/share", "top directory for -kind small")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "gentar: -o is required")
		os.Exit(2)
	}
	f, err := os.Create(*out + ".tmp")
	if err != nil {
		fail(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(bw)
	g := &gen{tw: tw, rng: rand.New(rand.NewPCG(*seed, 2))}
	switch *kind {
	case "small":
		g.small(*prefix, *files)
	case "big":
		g.big(*bigSize)
	case "deep":
		g.deep()
	case "hardlinks":
		g.hardlinks()
	default:
		fmt.Fprintf(os.Stderr, "gentar: unknown -kind %q\n", *kind)
		os.Exit(2)
	}
	if g.err == nil {
		g.err = tw.Close()
	}
	if g.err == nil {
		g.err = bw.Flush()
	}
	if g.err == nil {
		g.err = f.Close()
	}
	if g.err == nil {
		g.err = os.Rename(*out+".tmp", *out)
	}
	if g.err != nil {
		fail(g.err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gentar:", err)
	os.Exit(1)
}

type gen struct {
	tw  *tar.Writer
	rng *rand.Rand
	err error
	buf []byte
}

func (g *gen) dir(name string) {
	g.header(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: mtime})
}

func (g *gen) header(h *tar.Header) {
	if g.err == nil {
		h.Format = tar.FormatPAX
		g.err = g.tw.WriteHeader(h)
	}
}

// file writes a regular file of size bytes: text-like data, so that gzip
// and zstd see realistic ratios.
func (g *gen) file(name string, size int64, mode int64) {
	g.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: mode,
		Uid: 0, Gid: 0, ModTime: mtime})
	if g.buf == nil {
		g.buf = make([]byte, 1<<20)
		const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 \n{}();=_"
		for i := range g.buf {
			g.buf[i] = alphabet[g.rng.IntN(len(alphabet))]
		}
	}
	for size > 0 && g.err == nil {
		off := int64(g.rng.IntN(len(g.buf) / 2))
		n := int64(len(g.buf)) - off
		if n > size {
			n = size
		}
		_, g.err = g.tw.Write(g.buf[off : off+n])
		size -= n
	}
}

// small: directories of 100 files each, 0 to 8 KiB, below prefix.
func (g *gen) small(prefix string, files int) {
	perDir := 100
	for d := 0; d*perDir < files; d++ {
		dn := fmt.Sprintf("%s/d%03d", prefix, d)
		if d == 0 {
			parts := strings.Split(prefix, "/")
			for i := range parts {
				g.dir(strings.Join(parts[:i+1], "/"))
			}
		}
		g.dir(dn)
		for i := 0; i < perDir && d*perDir+i < files; i++ {
			g.file(fmt.Sprintf("%s/f%03d.txt", dn, i), int64(g.rng.IntN(8192)), 0o644)
		}
	}
}

func (g *gen) big(size int64) {
	g.dir("data")
	g.file("data/blob.bin", size, 0o644)
}

// deep: 20 chains 200 directories deep, a file at every level.
func (g *gen) deep() {
	for c := 0; c < 20; c++ {
		name := fmt.Sprintf("c%02d", c)
		for depth := 0; depth < 200; depth++ {
			g.dir(name)
			g.file(name+"/f", 100, 0o644)
			name += "/d"
		}
	}
}

// hardlinks: 2,000 files with 10 links each, spread over 20 directories.
func (g *gen) hardlinks() {
	g.dir("src")
	for i := 0; i < 2000; i++ {
		g.file(fmt.Sprintf("src/f%04d", i), 512, 0o755)
	}
	for d := 0; d < 20; d++ {
		dn := fmt.Sprintf("l%02d", d)
		g.dir(dn)
		for i := 0; i < 2000; i += 4 {
			for k := 0; k < 2 && g.err == nil; k++ {
				g.header(&tar.Header{Typeflag: tar.TypeLink, Name: fmt.Sprintf("%s/f%04d-%d", dn, i, k),
					Linkname: fmt.Sprintf("src/f%04d", i), ModTime: mtime})
			}
		}
	}
}
