package layers

import (
	"errors"
	"testing"

	"github.com/stratafs/strata/driver"
)

// TestReservedIDLeavesDriverDirs: a refused Create with the id of one of
// the overlay driver's own dirs (l, staging) must not remove that dir when
// the store undoes the failed layer; later layers still get short links.
func TestReservedIDLeavesDriverDirs(t *testing.T) {
	s, _ := overlayStore(t)
	for _, id := range []string{"l", "staging"} {
		if _, err := s.Create(CreateOptions{ID: id}); !errors.Is(err, driver.ErrInvalidArgument) {
			t.Fatalf("Create(%q) = %v, want ErrInvalidArgument", id, err)
		}
		if _, err := s.Create(CreateOptions{}); err != nil {
			t.Fatalf("Create after a refused %q: %v", id, err)
		}
	}
	if problems, err := s.Check(false); err != nil || len(problems) != 0 {
		t.Fatalf("Check: %v, %v", problems, err)
	}
}
