//go:build !amd64

package crc64iso

const useFold = false

func fold(reg uint64, p []byte, k *[4]uint64) (lo, hi uint64) {
	panic("crc64iso: no folding on this architecture")
}
