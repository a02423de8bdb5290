package testutil

import (
	"bytes"
	"os/exec"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Gzip returns p as one gzip member. Concatenate results for multi-member
// streams.
func Gzip(p []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(p); err != nil {
		panic("testutil.Gzip: " + err.Error())
	}
	if err := zw.Close(); err != nil {
		panic("testutil.Gzip: " + err.Error())
	}
	return buf.Bytes()
}

// Zstd returns p as one zstd frame.
func Zstd(p []byte) []byte {
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		panic("testutil.Zstd: " + err.Error())
	}
	defer zw.Close()
	return zw.EncodeAll(p, nil)
}

// CompressWith compresses p with a command-line tool that reads stdin with
// -c (bzip2, xz: the standard library has no writer for them). The test is
// skipped when the tool is not installed.
func CompressWith(t testing.TB, tool string, p []byte) []byte {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s not installed", tool)
	}
	cmd := exec.Command(tool, "-c")
	cmd.Stdin = bytes.NewReader(p)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s -c: %v", tool, err)
	}
	return out
}
