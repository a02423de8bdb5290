package layers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratafs/strata/testutil"
)

// TestCheckReportsRebuiltLinkC25: a short link the overlay driver
// rebuilt when it opened is in the store's Recovered and Check's report,
// kind driver-repair, marked repaired at open, and is no unrepaired
// problem.
func TestCheckReportsRebuiltLinkC25(t *testing.T) {
	testutil.RequireRoot(t)
	graph, run := testutil.TempStore(t)
	s, _ := openOverlay(t, graph, run)
	if _, err := s.Create(CreateOptions{ID: "ctr"}); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(graph, "overlay")
	short, err := os.ReadFile(filepath.Join(home, "ctr", "link"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(home, "l", string(short))); err != nil {
		t.Fatal(err)
	}

	s2, _ := openOverlay(t, graph, run)
	problems, err := s2.Check(false)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 {
		t.Fatalf("C25 Check = %v, want one driver-repair", problems)
	}
	p := problems[0]
	text := p.String()
	if p.Kind != "driver-repair" || !p.Repaired || !p.AtOpen ||
		!strings.Contains(text, "ctr") || !strings.HasSuffix(text, "(repaired at open)") {
		t.Errorf("C25 Check = %q (%+v), want a driver-repair of ctr repaired at open", text, p)
	}
	if rec := s2.Recovered(); len(rec) != 1 || rec[0].Kind != "driver-repair" {
		t.Errorf("C25 Recovered = %v", rec)
	}
}
