package archive_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stratafs/strata/testutil"
)

var (
	modeToken  = regexp.MustCompile(`^[0-7]{4}$`)
	ownerToken = regexp.MustCompile(`^[0-9]+:[0-9]+$`)
)

// describe renders a node in the corpus' format: TYPE[:PAYLOAD] then, when
// want asks for them, the mode, owner and size, then "opaque" and
// "link=FIRST" whenever they apply.
func describe(root, p string, n testutil.Node, want string) string {
	var s string
	switch n.Type {
	case "file":
		s = "file"
		if n.Size <= 64<<10 {
			data, err := os.ReadFile(filepath.Join(root, p))
			if err != nil {
				return "unreadable: " + err.Error()
			}
			s += ":" + string(data)
		}
	case "symlink":
		s = "symlink:" + n.Link
	case "char", "block":
		s = n.Type + ":" + n.Rdev
	default:
		s = n.Type
	}
	toks := strings.Fields(want)
	if len(toks) > 0 {
		toks = toks[1:]
	}
	for _, tok := range toks {
		switch {
		case modeToken.MatchString(tok):
			s += fmt.Sprintf(" %04o", n.Mode)
		case ownerToken.MatchString(tok):
			s += fmt.Sprintf(" %d:%d", n.UID, n.GID)
		case strings.HasPrefix(tok, "size="):
			s += fmt.Sprintf(" size=%d", n.Size)
		}
	}
	if n.Xattrs["trusted.overlay.opaque"] == "y" {
		s += " opaque"
	}
	if n.Hardlink != "" {
		s += " link=" + n.Hardlink
	}
	return s
}

// checkDescribe asserts that tree is exactly want.
func checkDescribe(t *testing.T, root string, want map[string]string, tree testutil.Tree) {
	t.Helper()
	var diffs []string
	for p, w := range want {
		n, ok := tree[p]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s: missing, want %q", p, short(w)))
			continue
		}
		if got := describe(root, p, n, w); got != w {
			diffs = append(diffs, fmt.Sprintf("%s: got %q, want %q", p, short(got), short(w)))
		}
	}
	for p, n := range tree {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: unexpected %q", p, short(describe(root, p, n, ""))))
		}
	}
	sort.Strings(diffs)
	for _, d := range diffs {
		t.Error(d)
	}
}

func short(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
