package rootfs

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
)

// CIEnv names the environment variable that, set to "true", turns a
// missing rootfs from a skip into a failure: CI must run the tests that
// need it.
const CIEnv = "CI"

// Require returns the rootfs tars for a test or benchmark, building them
// into DefaultCacheDir on first use with progress in the test log. When
// the rootfs cannot be built here (ErrUnavailable) it skips, or fails
// when CI=true; any other build error fails.
func Require(t testing.TB) Set {
	t.Helper()
	ctx := context.Background()
	// A build must not outlive the test binary's -timeout.
	if ctt, ok := t.(*testing.T); ok {
		if deadline, ok := ctt.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
	}

	log := slog.New(slog.NewTextHandler(testLogWriter{t}, nil))
	set, err := Tars(ctx, "", log)
	switch {
	case errors.Is(err, ErrUnavailable) && os.Getenv(CIEnv) != "true":
		t.Skipf("%v (with %s=true this fails instead)", err, CIEnv)
	case errors.Is(err, ErrUnavailable):
		t.Fatalf("%v (%s=true: CI must build the rootfs)", err, CIEnv)
	case err != nil:
		t.Fatalf("building the debian rootfs: %v", err)
	}
	return set
}

// testLogWriter sends each slog record to the test log.
type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
