package layers

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/testutil"
)

// TestPutApplyErrorWinsOverRecorder: when the applier rejects an entry and
// the tar-split recorder fails on bad bytes after it, Put reports the
// applier's error, which names the entry.
func TestPutApplyErrorWinsOverRecorder(t *testing.T) {
	s, _ := fakeStore(t)
	garbage := bytes.Repeat([]byte("not a tar header "), 64)[:1024]
	blob := testutil.NewTar().File("ok", "fine").File("fail-apply", "x").RawBytes(garbage).Bytes()

	_, err := s.Put(PutOptions{ID: strings.Repeat("e", 64)}, bytes.NewReader(blob))
	if !errors.Is(err, driver.ErrInvalidLayerData) || !strings.Contains(err.Error(), `entry "fail-apply"`) {
		t.Fatalf("Put = %v, want the applier's error naming fail-apply", err)
	}
}

// TestPutRecorderError: a tar the recorder cannot parse fails Put as
// invalid layer data naming the layer, and leaves no tar-split file.
func TestPutRecorderError(t *testing.T) {
	s, _ := fakeStore(t)
	blob := testutil.NewTar().File("ok", "fine").Bytes()
	blob[148] ^= 1 // the header checksum

	id := strings.Repeat("c", 64)
	_, err := s.Put(PutOptions{ID: id}, bytes.NewReader(blob))
	if !errors.Is(err, driver.ErrInvalidLayerData) || !strings.Contains(err.Error(), id) {
		t.Fatalf("Put = %v, want invalid layer data naming the layer", err)
	}
	if _, statErr := s.Get(id); !errors.Is(statErr, driver.ErrLayerUnknown) {
		t.Errorf("Get after the failed Put: %v", statErr)
	}
	if _, statErr := os.Stat(s.tarSplitPath(id)); !errors.Is(statErr, os.ErrNotExist) {
		t.Errorf("tar-split file left behind")
	}
}
