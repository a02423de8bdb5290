package layers

import (
	"errors"
	"strings"
	"testing"

	"github.com/stratafs/strata/driver"
)

// TestNameValidation: every way of giving a layer names (Put, Create,
// SetNames; PutAdditionalLayer shares cleanNames and newRecord) rejects a
// name that would break a listing, read as a flag, or shadow a layer id,
// and a new layer's id may not be another layer's name.
func TestNameValidation(t *testing.T) {
	s, _ := fakeStore(t)
	a := mustPut(t, s, PutOptions{ID: "aaa111", Names: []string{"base"}})

	bad := []struct {
		name    string
		want    error
		message string
	}{
		{"", driver.ErrInvalidArgument, "empty layer name"},
		{"two\nlines", driver.ErrInvalidArgument, `"two\nlines" holds a control character`},
		{"bell\x07", driver.ErrInvalidArgument, "control character"},
		{"del\x7f", driver.ErrInvalidArgument, "control character"},
		{"-rf", driver.ErrInvalidArgument, `"-rf" starts with '-'`},
		{strings.Repeat("n", 10000), driver.ErrInvalidArgument, "10000 bytes, more than 256"},
		{a.ID, driver.ErrNameInUse, `name "aaa111" is a layer id`},
		{"base", driver.ErrNameInUse, "belongs to layer aaa111"},
		// a's short id: Get would find the name before the prefix.
		{"aaa1", driver.ErrNameInUse, `name "aaa1" is a prefix of the id of layer aaa111`},
	}
	for i, tc := range bad {
		id := "bbb" + string(rune('0'+i))
		checks := map[string]error{}
		_, checks["Put"] = s.Put(PutOptions{ID: id, Names: []string{"ok", tc.name}}, sampleTar().Reader())
		_, checks["Create"] = s.Create(CreateOptions{ID: id, Names: []string{tc.name}})
		if tc.name != "base" && tc.name != "aaa1" { // a's own name and id prefix are fine for a
			checks["SetNames"] = s.SetNames(a.ID, []string{tc.name})
		}
		for verb, err := range checks {
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("%s with name %.20q: %v, want %v mentioning %q", verb, tc.name, err, tc.want, tc.message)
			}
		}
		if _, err := s.Get(id); !errors.Is(err, driver.ErrLayerUnknown) {
			t.Errorf("name %.20q: layer %s left behind: %v", tc.name, id, err)
		}
	}
	if l, _ := s.Get(a.ID); strings.Join(l.Names, ",") != "base" {
		t.Errorf("names of a changed by failed calls: %v", l.Names)
	}

	// A new layer's id may not be an existing name.
	mustPut(t, s, PutOptions{ID: "ccc333", Names: []string{"ddd444"}})
	if _, err := s.Put(PutOptions{ID: "ddd444"}, sampleTar().Reader()); !errors.Is(err, driver.ErrNameInUse) ||
		!strings.Contains(err.Error(), "id ddd444 is a name of layer ccc333") {
		t.Errorf("Put with an id that is a name: %v", err)
	}
	// Good names still work: 256 bytes, spaces, unicode, a name that is
	// a prefix of an id.
	good := []string{strings.Repeat("x", MaxNameLength), "with space", "ünï", "aaa", "repo/img:tag"}
	if err := s.SetNames(a.ID, good); err != nil {
		t.Errorf("SetNames(good): %v", err)
	}
	// Lookup order: exact id, then exact name, then unique id prefix.
	if l, err := s.Get("aaa"); err != nil || l.ID != a.ID {
		t.Errorf("Get(aaa) = %v, %v", l, err)
	}
}
