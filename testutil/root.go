// Package testutil holds helpers shared by strata's tests: a tar builder for
// layer inputs, a tree snapshot that compares what an apply produced, and
// guards for root-only tests and temporary stores.
//
// It must not import strata's archive, overlay or layers packages: their
// tests import it.
package testutil

import (
	"os"
	"testing"
)

// RequireRoot skips the test unless it runs with effective uid 0. Tests
// that create devices, chown files, set trusted.* xattrs or mount call it
// first.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: run the suite with sudo")
	}
}
