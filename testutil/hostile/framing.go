package hostile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"strings"

	"github.com/stratafs/strata/testutil"
)

// sample is T of case C13.
func sample() *testutil.Tar {
	return testutil.NewTar().File("a", "alpha").Dir("b").File("b/c", strings.Repeat("c", 3000))
}

var sampleTree = tree("a", "file:alpha", "b", "dir", "b/c", "file:"+strings.Repeat("c", 3000))

// junk returns n bytes of seeded pseudo-random data.
func junk(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// framingCases are broken tars, compression and digests.
func framingCases() []Case {
	gz := sample().Gzip()
	badCRC := bytes.Clone(gz)
	badCRC[len(badCRC)-8] ^= 0xff // the CRC32 in the gzip trailer
	zst := sample().Zstd()
	badChecksum := sample().Bytes()
	badChecksum[512+512+148] ^= 0x01 // header checksum of the second entry
	tarBytes := sample().Bytes()
	sum := sha256.Sum256(tarBytes)
	wrong := sum
	wrong[0] ^= 0xff
	return []Case{{
		Name:    "H76 a tar cut inside an entry's data",
		Blob:    sample().CutIn("b/c"),
		WantErr: errEntry("b/c"),
	}, {
		Name:    "H77 a tar cut inside a header",
		Blob:    sample().CutIn("b/"),
		WantErr: "unexpected EOF",
	}, {
		Name:      "H78 garbage after the end of the archive",
		Blob:      sample().Trailing(junk(78, 3000)).Bytes(),
		StoreOnly: true,
		Tree:      sampleTree,
	}, {
		Name: "H79 no end-of-archive marker",
		Blob: sample().NoEnd().Bytes(),
		Tree: sampleTree,
	}, {
		Name:      "H80 a gzip stream with a bad CRC",
		Blob:      badCRC,
		StoreOnly: true,
		WantErr:   "checksum",
	}, {
		Name:      "H81 a zstd stream cut short",
		Blob:      zst[:len(zst)-7],
		StoreOnly: true,
		WantErr:   "unexpected EOF",
	}, {
		Name:           "H82 a blob whose digest differs from the expected one",
		Blob:           tarBytes,
		StoreOnly:      true,
		ExpectedDigest: "sha256:" + hex.EncodeToString(wrong[:]),
		WantErr:        "uncompressed digest is sha256:" + hex.EncodeToString(sum[:]),
	}, {
		Name:    "H83 a header with a bad checksum",
		Blob:    badChecksum,
		WantErr: "invalid tar header",
	}, {
		Name:    "H84 random bytes",
		Blob:    junk(84, 1<<16),
		WantErr: "invalid tar header",
	}, {
		Name:      "H85 a gzip header followed by junk",
		Blob:      append(gz[:10:10], junk(85, 4096)...),
		StoreOnly: true,
		WantErr:   "layer",
	}, {
		Name:      "C13 tar + 8 KiB zeros",
		Blob:      sample().Trailing(make([]byte, 8192)).Bytes(),
		StoreOnly: true,
		Tree:      sampleTree,
	}, {
		Name:      "C13 two gzip members",
		Blob:      append(testutil.Gzip(tarBytes[:1024]), testutil.Gzip(tarBytes[1024:])...),
		StoreOnly: true,
		Tree:      sampleTree,
	}, {
		Name:      "C13 gzip + 16 NUL bytes",
		Blob:      append(bytes.Clone(gz), make([]byte, 16)...),
		StoreOnly: true,
		Tree:      sampleTree,
	}, {
		Name:      "C14 junk behind zstd magic",
		Blob:      append([]byte{0x28, 0xb5, 0x2f, 0xfd}, junk(14, 1<<20)...),
		StoreOnly: true,
		WantErr:   "layer",
	}, {
		Name:      "C14 junk behind bzip2 magic",
		Blob:      append([]byte("BZh9"), junk(15, 1<<20)...),
		StoreOnly: true,
		WantErr:   "layer",
	}, {
		// archive.Apply alone takes zero bytes as an empty tar; the store
		// refuses them (an empty file given by mistake is no layer).
		Name:      "H86 an empty stream is not a layer",
		Blob:      []byte{},
		StoreOnly: true,
		WantErr:   "empty diff: 0 bytes is not a tar",
	}, {
		Name: "H86 end-of-archive blocks alone are an empty layer",
		Blob: make([]byte, 1024),
		Tree: tree(),
	}}
}
