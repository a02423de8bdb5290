package layers

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/testutil"
)

// TestPutErrorNamesLayerOnce: a Put whose apply fails names the layer once
// and the entry, whether the driver names the layer in its error (overlay)
// or not (the fake driver).
func TestPutErrorNamesLayerOnce(t *testing.T) {
	// The fake driver fails at "fail-apply"; overlay at "b".
	bad := testutil.NewTar().File("fail-apply", "x").Hardlink("b", "missing").Bytes()
	stores := []struct {
		name, entry string
		open        func(t *testing.T) *Store
	}{
		{"fake driver", "fail-apply", func(t *testing.T) *Store { s, _ := fakeStore(t); return s }},
		{"overlay staged", "b", func(t *testing.T) *Store { s, _ := overlayStore(t); return s }},
		{"overlay in place", "b", func(t *testing.T) *Store {
			// Hiding the staging methods makes Put apply in place, where
			// the driver's error already names the layer.
			s, drv := overlayStore(t)
			in, err := Open(Options{GraphRoot: s.GraphRoot(), RunRoot: s.RunRoot(), Driver: unstaged{drv}})
			if err != nil {
				t.Fatal(err)
			}
			return in
		}},
	}
	for _, tc := range stores {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.open(t)
			id := strings.Repeat("e", 64)
			_, err := s.Put(PutOptions{ID: id}, strings.NewReader(string(bad)))
			if !errors.Is(err, driver.ErrInvalidLayerData) {
				t.Fatalf("Put = %v, want ErrInvalidLayerData", err)
			}
			msg := err.Error()
			if n := strings.Count(msg, id); n != 1 || !strings.Contains(msg, `entry "`+tc.entry+`"`) {
				t.Errorf("Put error %q names the layer %d times, want once, and entry %q", msg, n, tc.entry)
			}
		})
	}
}

// unstaged is a driver without its optional interfaces.
type unstaged struct{ driver.Driver }

// TestLayerError: the store adds the layer id only when the error does not
// begin with it already.
func TestLayerError(t *testing.T) {
	base := errors.New("boom")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{base, "layer x: boom"},
		{fmt.Errorf("layer x: %w", base), "layer x: boom"},
		{fmt.Errorf("layer xy: %w", base), "layer x: layer xy: boom"},
		{fmt.Errorf("parent of layer x: %w", base), "layer x: parent of layer x: boom"},
	} {
		got := layerError("x", tc.err)
		if got.Error() != tc.want || !errors.Is(got, base) {
			t.Errorf("layerError(%q) = %q, want %q wrapping the cause", tc.err, got, tc.want)
		}
	}
}
