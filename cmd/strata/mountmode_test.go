package main

import (
	"strings"
	"testing"
)

// TestMountOtherReadOnlyness: mounting a layer again with the other
// read-only-ness fails, saying how it is mounted, and does not count a
// user: one unmount then unmounts it.
func TestMountOtherReadOnlyness(t *testing.T) {
	tests := []struct {
		name          string
		first, second []string
		want          string
	}{
		{"rw then ro", []string{"mount"}, []string{"mount", "--read-only"}, "already mounted read-write"},
		{"ro then rw", []string{"mount", "--read-only"}, []string{"mount"}, "already mounted read-only"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCLI(t)
			c.ok("create", "--name", "ctr")
			path := strings.TrimSpace(c.ok(append(tc.first, "ctr")...))

			stderr := c.fails(nil, append(tc.second, "ctr")...)
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("second mount: stderr %q, want it to say %q", stderr, tc.want)
			}
			if out := c.ok("unmount", "ctr"); strings.Contains(out, "still mounted") {
				t.Errorf("unmount after the refused mount: %q; the refused mount was counted", out)
			}
			for _, m := range mountsBelow(t, path) {
				t.Errorf("%s still mounted after one unmount", m)
			}
		})
	}
}
