package testutil

import (
	"bytes"

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
