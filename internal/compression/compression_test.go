package compression

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/stratafs/strata/testutil"
)

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	w, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return w.EncodeAll(b, nil)
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestNewReader(t *testing.T) {
	payload := bytes.Repeat([]byte("strata layer bytes "), 1000)
	half := len(payload) / 2
	skippable := []byte{0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 'm', 'e', 't', 'a'}

	tests := []struct {
		name    string
		input   func(t *testing.T) []byte
		wantAlg Algorithm
		wantErr error // nil: the output must equal payload
	}{
		{"plain", func(t *testing.T) []byte { return payload }, None, nil},
		{"gzip", func(t *testing.T) []byte { return gzipBytes(t, payload) }, Gzip, nil},
		{"C13 gzip multi-member", func(t *testing.T) []byte {
			return concat(gzipBytes(t, payload[:half]), gzipBytes(t, payload[half:]))
		}, Gzip, nil},
		{"C13 gzip NUL padding", func(t *testing.T) []byte {
			return concat(gzipBytes(t, payload), make([]byte, 16))
		}, Gzip, nil},
		{"gzip trailing junk", func(t *testing.T) []byte {
			return concat(gzipBytes(t, payload), []byte("junk"))
		}, Gzip, ErrCorrupt},
		{"gzip truncated", func(t *testing.T) []byte {
			g := gzipBytes(t, payload)
			return g[:len(g)/2]
		}, Gzip, io.ErrUnexpectedEOF},
		{"zstd", func(t *testing.T) []byte { return zstdBytes(t, payload) }, Zstd, nil},
		{"C13 zstd skippable frames", func(t *testing.T) []byte {
			return concat(skippable, zstdBytes(t, payload[:half]), skippable, zstdBytes(t, payload[half:]))
		}, Zstd, nil},
		{"bzip2", func(t *testing.T) []byte { return testutil.CompressWith(t, "bzip2", payload) }, Bzip2, nil},
		{"xz", func(t *testing.T) []byte { return testutil.CompressWith(t, "xz", payload) }, Xz, ErrUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc, alg, err := NewReader(bufio.NewReader(bytes.NewReader(tc.input(t))))
			if alg != tc.wantAlg {
				t.Errorf("algorithm %v, want %v", alg, tc.wantAlg)
			}
			var got []byte
			if err == nil {
				got, err = io.ReadAll(rc)
				rc.Close()
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("decompressed %d bytes, want the %d-byte payload", len(got), len(payload))
			}
		})
	}
}

// TestJunk is C14: random bytes behind each magic fail fast with an error.
func TestJunk(t *testing.T) {
	junk := make([]byte, 1<<20)
	if _, err := rand.Read(junk); err != nil {
		t.Fatal(err)
	}
	gzipHeader := gzipBytes(t, nil)[:10]
	for _, tc := range []struct {
		name  string
		magic []byte
	}{
		{"C14 gzip magic", gzipMagic},
		{"C14 gzip header", gzipHeader},
		{"C14 zstd magic", zstdMagic},
		{"C14 bzip2 magic", []byte("BZh9")},
		{"C14 xz magic", xzMagic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			input := concat(tc.magic, junk)
			rc, _, err := NewReader(bufio.NewReader(bytes.NewReader(input)))
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
			}
			if err == nil {
				t.Fatal("junk decompressed without error")
			}
		})
	}
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		head []byte
		want Algorithm
	}{
		{[]byte{0x1f, 0x8b, 8}, Gzip},
		{[]byte("BZh91AY"), Bzip2},
		{xzMagic, Xz},
		{zstdMagic, Zstd},
		{[]byte{0x5f, 0x2a, 0x4d, 0x18}, Zstd},
		{[]byte("etc/passwd"), None},
		{nil, None},
	} {
		if got := Detect(tc.head); got != tc.want {
			t.Errorf("Detect(%x) = %v, want %v", tc.head, got, tc.want)
		}
	}
}
