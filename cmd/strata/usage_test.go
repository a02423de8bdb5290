package main

import (
	"strings"
	"testing"
)

// TestHelp checks the tool's and every verb's --help: usage with the flags
// and an example on stdout, exit 0. No store is opened, so no root needed.
func TestHelp(t *testing.T) {
	for _, flag := range []string{"--help", "-h"} {
		r := runStrata(t, nil, flag)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: strata ") {
			t.Fatalf("strata %s: exit %d, stdout %q", flag, r.code, r.stdout)
		}
		for _, v := range verbs {
			if !strings.Contains(r.stdout, "  "+v.name+" ") {
				t.Errorf("strata %s does not list verb %s:\n%s", flag, v.name, r.stdout)
			}
		}
	}

	for _, v := range verbs {
		for _, args := range [][]string{{v.name, "--help"}, {v.name, "-h"}, {"help", v.name}} {
			t.Run(strings.Join(args, "_"), func(t *testing.T) {
				r := runStrata(t, nil, args...)
				if r.code != 0 {
					t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
				}
				want := []string{"Usage: strata " + v.name, "Example:\n  strata "}
				for _, w := range want {
					if !strings.Contains(r.stdout, w) {
						t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
					}
				}
				fs := newFlags(v.name)
				v.setup(fs)
				for _, name := range flagNames(fs) {
					dashed := "--" + name
					if len(name) == 1 {
						dashed = "-" + name
					}
					if !strings.Contains(r.stdout, "  "+dashed+" ") {
						t.Errorf("stdout lacks flag %s:\n%s", dashed, r.stdout)
					}
				}
			})
		}
	}
}

// TestUsageErrors checks that command lines strata cannot understand print
// usage on stderr and exit 2, before any store is opened.
func TestUsageErrors(t *testing.T) {
	root := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no verb", nil, "no verb given"},
		{"unknown verb", []string{"frobnicate"}, `unknown verb "frobnicate"`},
		{"unknown global flag", []string{"--colour", "layers"}, "-colour"},
		{"unknown verb flag", []string{"mount", "--bogus", "x"}, "-bogus"},
		{"missing argument", []string{"layer"}, "expected one argument"},
		{"extra argument", []string{"rm", "a", "b"}, `got "a b"`},
		{"import without file", []string{"import", "--name", "x"}, "expected one argument"},
		{"create with argument", []string{"create", "x"}, `got "x"`},
		{"flag value missing", []string{"import", "--parent"}, "flag needs an argument"},
		{"help for unknown verb", []string{"help", "nope"}, `unknown verb "nope"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--root", root + "/graph", "--runroot", root + "/run"}, tc.args...)
			r := runStrata(t, nil, args...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2; stderr %q", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout not empty: %q", r.stdout)
			}
		})
	}
}

// TestParseArgsInterspersed checks flags after positional arguments and
// the "--" terminator.
func TestParseArgsInterspersed(t *testing.T) {
	tests := []struct {
		args     []string
		wantPos  []string
		wantJSON bool
	}{
		{[]string{"L", "--json"}, []string{"L"}, true},
		{[]string{"--json", "L"}, []string{"L"}, true},
		{[]string{"L"}, []string{"L"}, false},
		{[]string{"--", "--json"}, []string{"--json"}, false},
		{[]string{"a", "--json", "b", "c"}, []string{"a", "b", "c"}, true},
	}
	for _, tc := range tests {
		fs := newFlags("t")
		asJSON := fs.Bool("json", false, "")
		pos, err := parseArgs(fs, tc.args, 0, -1)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if strings.Join(pos, "|") != strings.Join(tc.wantPos, "|") || *asJSON != tc.wantJSON {
			t.Errorf("%q: positional %q json %v, want %q %v", tc.args, pos, *asJSON, tc.wantPos, tc.wantJSON)
		}
	}
}
