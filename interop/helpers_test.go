package interop

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratafs/strata/layers"
	"github.com/stratafs/strata/overlay"
	"github.com/stratafs/strata/testutil"
)

// csEnv names the environment variable holding the containers-storage CLI.
const csEnv = "STRATA_CONTAINERS_STORAGE"

// peer runs the containers-storage CLI on one store. Every call runs in a
// private mount namespace (unshare -m) with explicit graph and run roots,
// so the CLI never touches its default store and its mounts vanish with it.
type peer struct {
	bin, graph, run string
}

// needPeer returns the CLI peer for a store, skipping when it is not built.
func needPeer(t *testing.T, graph, run string) *peer {
	t.Helper()
	testutil.RequireRoot(t)
	bin := os.Getenv(csEnv)
	if bin == "" {
		t.Skipf("%s is not set: build the peer with scripts/build-containers-storage.sh "+
			"and export its path to run the interop tests", csEnv)
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare(1) is missing; the peer must run in a private mount namespace")
	}
	return &peer{bin: bin, graph: graph, run: run}
}

// cmdline is the shell-quoted command that runs the peer with args.
func (p *peer) cmdline(args ...string) string {
	all := append([]string{p.bin, "--graph", p.graph, "--run", p.run, "--storage-driver", "overlay"}, args...)
	quoted := make([]string, len(all))
	for i, a := range all {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(quoted, " ")
}

// sh runs a shell script in a private mount namespace; "$CS" in the script
// is the peer command line. It returns standard output.
func (p *peer) sh(t *testing.T, script string, stdin []byte) string {
	t.Helper()
	full := "set -eu\nCS() { " + p.cmdline() + " \"$@\"; }\n" + script
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", full)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		t.Fatalf("containers-storage script failed: %v\nscript:\n%s\nstderr:\n%s", err, script, stderr.String())
	}
	return stdout.String()
}

// csLayer is the part of the peer's JSON layer record the tests compare.
type csLayer struct {
	ID         string   `json:"id"`
	Names      []string `json:"names"`
	Parent     string   `json:"parent"`
	DiffDigest string   `json:"diff-digest"`
	DiffSize   int64    `json:"diff-size"`
}

// layers lists the store's layers as the peer sees them.
func (p *peer) layers(t *testing.T) []csLayer {
	t.Helper()
	out := p.sh(t, "CS layers --json", nil)
	var list []csLayer
	if strings.TrimSpace(out) == "" || strings.TrimSpace(out) == "null" {
		return nil
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("peer layers --json: %v\n%s", err, out)
	}
	return list
}

// openStore opens a strata store on graph and run roots.
func openStore(t *testing.T, graph, run string) *layers.Store {
	t.Helper()
	drv, err := overlay.New(filepath.Join(graph, "overlay"), overlay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := layers.Open(layers.Options{GraphRoot: graph, RunRoot: run, Driver: drv})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		drv.Cleanup()
	})
	return s
}

// sha256Hex is the digest string of data.
func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// listingScript prints a stable description of the tree at "$mp": type,
// mode, owner, size, link target and content digest of every path.
const listingScript = `cd "$mp"
find . -printf '%p %y %m %U:%G %l\n' | grep -v '^\. ' | sort
find . -type f -exec sha256sum {} + | sort -k2
`

// mountListing lists the merged tree of a strata mount with the same
// script the peer's listing uses.
func mountListing(t *testing.T, mp string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", "set -eu\nmp="+"'"+mp+"'\n"+listingScript).Output()
	if err != nil {
		t.Fatalf("listing %s: %v", mp, err)
	}
	return string(out)
}
