package overlay

import (
	"os"
	"strings"
	"testing"
)

// TestRecoveredShortLinksC25: what New rebuilt in l/ is listed by
// Recovered, one line naming the layer per link; a clean open lists
// nothing.
func TestRecoveredShortLinksC25(t *testing.T) {
	d := newTestDriver(t, Options{})
	mustCreate(t, d, "A", "")
	mustCreate(t, d, "B", "A")
	if got := d.Recovered(); len(got) != 0 {
		t.Errorf("Recovered of a fresh home = %q", got)
	}
	shortA := readString(t, d.linkFile("A"))
	if err := os.Remove(d.shortLinkPath(shortA)); err != nil {
		t.Fatal(err)
	}

	d2 := openTestDriver(t, d.home, Options{})
	got := d2.Recovered()
	if len(got) != 1 || !strings.Contains(got[0], "layer A") || !strings.Contains(got[0], "l/"+shortA) {
		t.Fatalf("Recovered = %q, want one line naming layer A and l/%s", got, shortA)
	}
	if again := openTestDriver(t, d.home, Options{}).Recovered(); len(again) != 0 {
		t.Errorf("Recovered after a clean open = %q", again)
	}
}
