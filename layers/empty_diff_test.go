package layers

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stratafs/strata/driver"
)

// TestPutEmptyDiff: zero bytes (plain, or a gzip of nothing) are no tar,
// so Put fails and leaves nothing; a tar of only its end-of-archive
// blocks is a valid empty layer.
func TestPutEmptyDiff(t *testing.T) {
	s, drv := fakeStore(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Close()
	for name, blob := range map[string][]byte{"plain": nil, "gzip": gz.Bytes()} {
		id := strings.Repeat("e", 64)
		_, err := s.Put(PutOptions{ID: id}, bytes.NewReader(blob))
		want := "layer " + id + ": empty diff: 0 bytes is not a tar"
		if !errors.Is(err, driver.ErrInvalidLayerData) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: Put(empty) = %v, want %q wrapping ErrInvalidLayerData", name, err, want)
		}
		if list, _ := s.List(); len(list) != 0 || drv.Exists(id) {
			t.Errorf("%s: failed Put left %v (dir %v)", name, list, drv.Exists(id))
		}
		if _, err := os.Stat(s.tarSplitPath(id)); !os.IsNotExist(err) {
			t.Errorf("%s: tar-split left: %v", name, err)
		}
	}
	l, err := s.Put(PutOptions{}, bytes.NewReader(make([]byte, 1024)))
	if err != nil || l.UncompressedSize != 1024 {
		t.Fatalf("Put(end-of-archive only) = %v, %v", l, err)
	}
}
