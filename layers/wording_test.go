package layers

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/stratafs/strata/driver"
)

// TestPutErrorWording: the messages of an unsupported compression and of a
// wrong expected digest say each thing once and say all of it.
func TestPutErrorWording(t *testing.T) {
	s, _ := fakeStore(t)
	id := strings.Repeat("a", 64)

	xz := append([]byte{0xfd, '7', 'z', 'X', 'Z', 0x00}, make([]byte, 64)...)
	_, err := s.Put(PutOptions{ID: id}, bytes.NewReader(xz))
	want := "layer " + id + ": xz-compressed layers: compression format not supported"
	if !errors.Is(err, driver.ErrNotSupported) || err.Error() != want {
		t.Errorf("xz Put = %q, want %q wrapping ErrNotSupported", err, want)
	}

	blob := sampleTar().Bytes()
	wrong := digest.FromString("not the layer")
	_, err = s.Put(PutOptions{ID: id, ExpectedUncompressedDigest: wrong}, bytes.NewReader(blob))
	actual := digest.FromBytes(blob)
	if !errors.Is(err, driver.ErrInvalidLayerData) || !strings.Contains(err.Error(), "uncompressed digest is "+actual.String()) ||
		!strings.Contains(err.Error(), "expected "+wrong.String()) {
		t.Errorf("wrong digest Put = %v, want both %s and expected %s", err, actual, wrong)
	}
}
