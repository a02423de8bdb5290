package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratafs/strata/testutil"
)

// strataBin is the binary built once by TestMain; every test runs it as a
// separate process, as a user would.
var strataBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strata-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	strataBin = filepath.Join(dir, "strata")
	build := exec.Command("go", "build", "-o", strataBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building strata: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}

	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cli runs the strata binary against one temporary store.
type cli struct {
	t             *testing.T
	root, runRoot string
}

// newCLI returns a cli on a fresh temp store. Its cleanup fails the test
// when a mount is left below the store, then unmounts it.
func newCLI(t *testing.T) *cli {
	t.Helper()
	testutil.RequireRoot(t)
	root, runRoot := testutil.TempStore(t)
	base := filepath.Dir(root)
	t.Cleanup(func() {
		if left := mountsBelow(t, base); len(left) > 0 {
			t.Errorf("mounts left after the test: %v", left)
		}
	})
	return &cli{t: t, root: root, runRoot: runRoot}
}

// result is what one run of the binary produced.
type result struct {
	stdout, stderr string
	code           int
}

// run runs strata with the store's roots and args, feeding stdin.
func (c *cli) run(stdin []byte, args ...string) result {
	c.t.Helper()
	full := append([]string{"--root", c.root, "--runroot", c.runRoot}, args...)
	return runStrata(c.t, stdin, full...)
}

// ok runs args, fails the test unless strata exits 0, and returns stdout.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	r := c.run(nil, args...)
	if r.code != 0 {
		c.t.Fatalf("strata %s: exit %d, stderr:\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// fails runs args, fails the test unless strata exits 1 with a
// "strata: " message, and returns stderr.
func (c *cli) fails(stdin []byte, args ...string) string {
	c.t.Helper()
	r := c.run(stdin, args...)
	if r.code != 1 || !strings.HasPrefix(r.stderr, "strata: ") {
		c.t.Fatalf("strata %s: exit %d, stderr %q; want exit 1 and a \"strata: \" message",
			strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stderr
}

// importTar imports tarBytes through a file and returns the new id, the
// last line of stdout.
func (c *cli) importTar(tarBytes []byte, args ...string) string {
	c.t.Helper()
	path := filepath.Join(c.t.TempDir(), "layer.tar")
	if err := os.WriteFile(path, tarBytes, 0o644); err != nil {
		c.t.Fatal(err)
	}
	out := c.ok(append(append([]string{"import"}, args...), path)...)
	return lastLine(out)
}

func runStrata(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	cmd := exec.Command(strataBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("running strata: %v", err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// mountsBelow lists the mount points in /proc/mounts at or below dir.
func mountsBelow(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/mounts")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 1 && (fields[1] == dir || strings.HasPrefix(fields[1], dir+"/")) {
			found = append(found, fields[1])
		}
	}
	return found
}
