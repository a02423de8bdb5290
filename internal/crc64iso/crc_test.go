package crc64iso

import (
	"bytes"
	"hash/crc64"
	"math/rand/v2"
	"testing"
)

// TestMatchesHashCRC64 compares every length up to a few blocks past each
// path's thresholds, at every alignment, with and without a starting
// checksum, against the standard library.
func TestMatchesHashCRC64(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 4096+64)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	for _, n := range append(lengths(600), 1000, 4095, 4096) {
		for off := range 16 {
			p := buf[off : off+n]
			for _, init := range []uint64{0, ^uint64(0), rng.Uint64()} {
				want := crc64.Update(init, table, p)
				if got := Update(init, p); got != want {
					t.Fatalf("len %d offset %d init %#x: got %#x, want %#x", n, off, init, got, want)
				}
			}
		}
	}
}

func lengths(upTo int) []int {
	var out []int
	for n := range upTo + 1 {
		out = append(out, n)
	}
	return out
}

// TestFoldUsedHere fails when this machine could fold but the fast path
// is off, so the speed-up is not silently lost.
func TestFoldUsedHere(t *testing.T) {
	if !useFold {
		t.Skip("no carry-less multiplication on this CPU or architecture: tables only")
	}
	p := bytes.Repeat([]byte("0123456789abcdef"), 64)
	if got, want := foldUpdate(0, p), crc64.Update(0, table, p); got != want {
		t.Fatalf("fold: got %#x, want %#x", got, want)
	}
}

// TestDigest checks the hash.Hash64 form written in pieces.
func TestDigest(t *testing.T) {
	data := bytes.Repeat([]byte("strata layer payload "), 1000)
	want := crc64.New(table)
	want.Write(data)
	d := New()
	for p := data; len(p) > 0; {
		n := min(len(p), 1+len(p)%777)
		d.Write(p[:n])
		p = p[n:]
	}
	if d.Sum64() != want.Sum64() || !bytes.Equal(d.Sum(nil), want.Sum(nil)) {
		t.Fatalf("got %#x, want %#x", d.Sum64(), want.Sum64())
	}
	d.Reset()
	if d.Sum64() != 0 {
		t.Fatal("Reset left a checksum")
	}
}

func FuzzUpdate(f *testing.F) {
	f.Add(uint64(0), []byte("hello"))
	f.Add(uint64(12345), bytes.Repeat([]byte{0xff}, 300))
	f.Fuzz(func(t *testing.T, init uint64, p []byte) {
		if got, want := Update(init, p), crc64.Update(init, table, p); got != want {
			t.Fatalf("len %d: got %#x, want %#x", len(p), got, want)
		}
	})
}

func BenchmarkUpdate(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"256B", 256}, {"4KiB", 4 << 10}, {"1MiB", 1 << 20}} {
		p := make([]byte, size.n)
		b.Run("crc64iso/"+size.name, func(b *testing.B) {
			b.SetBytes(int64(size.n))
			for b.Loop() {
				Update(0, p)
			}
		})
		b.Run("hash-crc64/"+size.name, func(b *testing.B) {
			b.SetBytes(int64(size.n))
			for b.Loop() {
				crc64.Update(0, table, p)
			}
		})
	}
}
