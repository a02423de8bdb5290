package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/testutil"
	"github.com/stratafs/strata/testutil/hostile"
)

// plainReader hides every method but Read (archive/tar seeks past data
// when it can; Apply's stream cannot).
type plainReader struct{ r io.Reader }

func (p plainReader) Read(b []byte) (int, error) { return p.r.Read(b) }

// diffSource returns a reader of data shaped by mode: whole reads, one
// byte at a time, half reads, or the last bytes with io.EOF.
func diffSource(data []byte, mode int) io.Reader {
	r := io.Reader(bytes.NewReader(data))
	switch mode % 4 {
	case 1:
		r = iotest.OneByteReader(r)
	case 2:
		r = iotest.HalfReader(r)
	case 3:
		r = iotest.DataErrReader(r)
	}
	return plainReader{r}
}

// maxSparseRead bounds the data read of a sparse entry: its holes read as
// zeros.
const maxSparseRead = 1 << 20

// diffTarReaders reads data with archive/tar and with tarReader and
// reports the first difference: headers (reflect.DeepEqual), data bytes
// and read results, errors and where they come. mode varies the reads
// (see diffSource) and how much of each entry's data is read.
func diffTarReaders(data []byte, mode int) error {
	want := tar.NewReader(diffSource(data, mode))
	got := newTarReader(diffSource(data, mode))
	sameErr := func(a, b error) bool {
		return a == b || (a != nil && b != nil && a.Error() == b.Error())
	}
	var wbuf, gbuf [32 << 10]byte
	// read compares one Read call; diff reports a difference.
	read := func(where string, size int) (n int, err, diff error) {
		wn, werr := want.Read(wbuf[:size])
		gn, gerr := got.Read(gbuf[:size])
		if wn != gn || !sameErr(werr, gerr) || !bytes.Equal(wbuf[:wn], gbuf[:gn]) {
			return 0, nil, fmt.Errorf("%s: Read(%d) = %d, %v; archive/tar: %d, %v", where, size, gn, gerr, wn, werr)
		}
		return wn, werr, nil
	}
	if _, _, diff := read("before Next", 10); diff != nil {
		return diff
	}
	for i := 0; ; i++ {
		whdr, werr := want.Next()
		ghdr, gerr := got.Next()
		if !sameErr(werr, gerr) {
			return fmt.Errorf("entry %d: Next error %v; archive/tar: %v", i, gerr, werr)
		}
		if !reflect.DeepEqual(whdr, ghdr) {
			return fmt.Errorf("entry %d: header\n%+v\narchive/tar:\n%+v", i, ghdr, whdr)
		}
		if werr != nil && !errors.Is(werr, tar.ErrInsecurePath) {
			// The error sticks.
			_, werr2 := want.Next()
			_, gerr2 := got.Next()
			if !sameErr(werr2, gerr2) {
				return fmt.Errorf("entry %d: second Next error %v; archive/tar: %v", i, gerr2, werr2)
			}
			_, _, diff := read(fmt.Sprintf("entry %d after error", i), 100)
			return diff
		}
		where := fmt.Sprintf("entry %d (%q)", i, whdr.Name)
		// How much to read: all, nothing, about half, all in odd sizes.
		limit := int64(-1)
		size := len(wbuf)
		switch (mode/4 + i) % 4 {
		case 1:
			limit = 0
		case 2:
			limit = whdr.Size / 2
		case 3:
			size = 7
		}
		if isSparse(whdr) && (limit < 0 || limit > maxSparseRead) {
			limit = maxSparseRead
		}
		for done := int64(0); limit < 0 || done < limit; {
			n := size
			if limit >= 0 && int64(n) > limit-done {
				n = int(limit - done)
			}
			k, err, diff := read(where, n)
			if diff != nil {
				return diff
			}
			if err != nil {
				break
			}
			if k == 0 && n == 0 {
				break
			}
			done += int64(k)
		}
	}
}

// checkTarReader fails t when tarReader and archive/tar read blob
// differently, in every read mode, whole and cut short at a few places.
func checkTarReader(t *testing.T, blob []byte) {
	t.Helper()
	for mode := range 16 {
		if err := diffTarReaders(blob, mode); err != nil {
			t.Fatalf("mode %d: %v", mode, err)
		}
	}
	cuts := []int{1, 100, 511, 512, 513, 1000, 1024, 1536, 2047, 2048, 3000}
	for _, cut := range cuts {
		if cut < len(blob) {
			if err := diffTarReaders(blob[:cut], cut); err != nil {
				t.Fatalf("cut at %d: %v", cut, err)
			}
			if err := diffTarReaders(blob[:len(blob)-cut], cut+1); err != nil {
				t.Fatalf("cut %d from the end: %v", cut, err)
			}
		}
	}
}

// tarReaderCorpus is every tar the archive tests hold or generate
// without a tool.
func tarReaderCorpus(t testing.TB) map[string][]byte {
	corpus := map[string][]byte{}
	files, _ := filepath.Glob(filepath.Join("testdata", "hostile", "*.tar"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		corpus[filepath.Base(f)] = data
	}
	for _, c := range hostile.Corpus("/nonexistent/victim") {
		corpus["hostile "+c.Name] = c.Blob
	}
	readAll := func(r io.Reader) []byte {
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	corpus["ManyEntries"] = readAll(hostile.ManyEntries(300, 7))
	corpus["RepeatedDir"] = readAll(hostile.RepeatedDir(50))

	long := strings.Repeat("long-directory-name/", 12) + strings.Repeat("f", 200)
	t2 := time.Date(2003, 4, 5, 6, 7, 8, 123456789, time.UTC)
	corpus["kinds and formats"] = testutil.NewTar().Dir("d", testutil.Mode(0o750), testutil.Owner(3, 4)).
		File("d/f", "data", testutil.Mode(0o4640), testutil.Owner(5, 6), testutil.MTime(t2),
			testutil.Format(tar.FormatPAX)).
		File("d/g", strings.Repeat("x", 513), testutil.Format(tar.FormatGNU)).
		File("d/u", strings.Repeat("y", 1024), testutil.Format(tar.FormatUSTAR)).
		Symlink("d/l", "f", testutil.Owner(7, 8)).Hardlink("d/h", "d/f").
		Fifo("p", testutil.Mode(0o600)).CharDev("c", 1, 3).BlockDev("b", 8, 0).
		File(long, "x").Symlink("l", long).Hardlink("h", long).
		File(long+"g", "x", testutil.Format(tar.FormatGNU)).
		File(strings.Repeat("p", 120)+"/name", "prefixed", testutil.Format(tar.FormatUSTAR)).
		File("caf\xe9", "latin-1", testutil.Format(tar.FormatPAX)).
		File("owned", "x", testutil.Owner(4294967294, 1885580785)).
		File("x", "", testutil.Xattr("user.a", "1"), testutil.Xattr("trusted.b", ""),
			testutil.PAX("comment", "c"), testutil.PAX("uid", ""), testutil.PAX("mtime", "-1.5"),
			testutil.PAX("atime", "12.0000000009"), testutil.PAX("ctime", "7")).
		Whiteout("d/gone").Opaque("o").
		Raw(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "global",
			PAXRecords: map[string]string{"comment": "g"}}, nil).
		File("after-global", "g").
		Raw(&tar.Header{Typeflag: tar.TypeCont, Name: "cont", Size: 3}, []byte("abc")).
		Raw(&tar.Header{Typeflag: tar.TypeRegA, Name: "rega/", Size: 0}, nil).
		Raw(&tar.Header{Typeflag: tar.TypeRegA, Name: "rega", Size: 2}, []byte("ab")).
		Raw(&tar.Header{Typeflag: 'V', Name: "volume"}, nil).
		File("/abs", "a").File("../up", "u").
		Sparse("sparse", 1<<30, []testutil.SparseChunk{{Offset: 4096, Data: []byte("hello")}}).
		File("last", "end").Bytes()
	corpus["empty"] = nil
	corpus["zeros"] = make([]byte, 10240)
	return corpus
}

// TestTarReaderFastPath pins which entries tarReader hands to
// archive/tar.
func TestTarReaderFastPath(t *testing.T) {
	r := newTarReader(plainReader{bytes.NewReader(tarReaderCorpus(t)["kinds and formats"])})
	var delegated []string
	for {
		hdr, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.tr != nil {
			delegated = append(delegated, hdr.Name)
		}
	}
	long := strings.Repeat("long-directory-name/", 12) + strings.Repeat("f", 200) + "g"
	want := []string{long, "global", "after-global", "cont", "volume", "/abs", "../up", "sparse", "last"}
	if !slices.Equal(delegated, want) {
		t.Errorf("delegated %q, want %q", delegated, want)
	}
}

func TestTarReaderCorpus(t *testing.T) {
	for name, blob := range tarReaderCorpus(t) {
		t.Run(name, func(t *testing.T) { checkTarReader(t, blob) })
	}
}

// TestTarReaderGNUTar compares the readers on tars GNU tar writes in its
// gnu, posix and ustar formats from a tree with long names, links,
// devices, a FIFO, xattrs and sparse files.
func TestTarReaderGNUTar(t *testing.T) {
	gnutar, err := exec.LookPath("tar")
	if err != nil {
		t.Skip("no tar")
	}
	src := t.TempDir()
	mk := func(name, data string) string {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	long := strings.Repeat("a-long-directory-name/", 6) + strings.Repeat("n", 120)
	mk("small", "hello")
	mk("block", strings.Repeat("b", 512))
	mk(long, "deep")
	mk("dir/ünïcödé", "utf-8")
	mk("dir/caf\xe9", "latin-1")
	if err := os.Symlink(strings.Repeat("t", 150), filepath.Join(src, "longlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("small", filepath.Join(src, "sym")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, long), filepath.Join(src, "hard")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "small"), filepath.Join(src, "h-"+strings.Repeat("h", 120))); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(src, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mknod(filepath.Join(src, "sda"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 0))); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(src, "small"), 1234, 5678); err != nil {
			t.Fatal(err)
		}
	}
	// xattrs, where the file system takes them.
	x := mk("xattr", "x")
	_ = unix.Setxattr(x, "user.note", []byte("hi"), 0)
	_ = unix.Setxattr(x, "user.empty", nil, 0)
	if os.Geteuid() == 0 {
		_ = unix.Setxattr(x, "trusted.t", []byte{0, 1, 2, 0xff}, 0)
	}
	// Small sparse files: data, holes, a hole at the end.
	for i, layout := range [][]int64{{0, 8192}, {65536, 300}, {4096, 1, 100000, 5000}} {
		p := mk(fmt.Sprintf("sparse%d", i), "")
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < len(layout); j += 2 {
			if _, err := f.WriteAt(bytes.Repeat([]byte{byte('A' + j)}, int(layout[j+1])), layout[j]); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Truncate(256 << 10); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 678900000, time.UTC)
	_ = filepath.Walk(src, func(p string, _ os.FileInfo, _ error) error {
		_ = unix.Lutimes(p, []unix.Timeval{unix.NsecToTimeval(mtime.UnixNano()), unix.NsecToTimeval(mtime.UnixNano())})
		return nil
	})

	for _, args := range [][]string{
		{"--format=gnu"}, {"--format=gnu", "--sparse"}, {"--format=oldgnu", "--sparse"},
		{"--format=posix", "--xattrs", "--xattrs-include=*"},
		{"--format=posix", "--sparse", "--sparse-version=0.0"},
		{"--format=posix", "--sparse", "--sparse-version=0.1"},
		{"--format=posix", "--sparse", "--sparse-version=1.0"},
		{"--format=ustar"}, {"--format=v7"},
	} {
		name := strings.Join(args, " ")
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.tar")
			cmd := exec.Command(gnutar, append(append([]string{"-c", "-f", out, "-C", src}, args...), ".")...)
			msg, err := cmd.CombinedOutput()
			// ustar and v7 cannot hold every name: tar leaves them out
			// and exits 2.
			if err != nil && !strings.Contains(name, "ustar") && !strings.Contains(name, "v7") {
				t.Fatalf("tar: %v\n%s", err, msg)
			}
			blob, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			checkTarReader(t, blob)
		})
	}
}

// FuzzTarReader compares tarReader with archive/tar on arbitrary bytes.
func FuzzTarReader(f *testing.F) {
	for _, blob := range tarReaderCorpus(f) {
		if len(blob) <= 16<<10 {
			f.Add(blob, uint8(0))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		if err := diffTarReaders(data, int(mode)); err != nil {
			t.Fatal(err)
		}
	})
}
