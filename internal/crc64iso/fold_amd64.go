package crc64iso

import "golang.org/x/sys/cpu"

var useFold = cpu.X86.HasPCLMULQDQ && cpu.X86.HasSSE41

// fold folds p (a multiple of 16 bytes, at least 16) into 128 bits, reg
// xored into its first 8 bytes, with carry-less multiplications.
//
//go:noescape
func fold(reg uint64, p []byte, k *[4]uint64) (lo, hi uint64)
