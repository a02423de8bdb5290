package main

import (
	"testing"

	"github.com/stratafs/strata/layers"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1": 1, "512": 512, "1K": 1 << 10, "2k": 2 << 10, "3M": 3 << 20, "4MiB": 4 << 20,
		"5GB": 5 << 30, "1T": 1 << 40, "8388607T": 8388607 << 40,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-5", "1.5M", "M", "1P", "8388608T"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
	if got := formatSize(layers.DefaultMaxDiffSize); got != "1T" {
		t.Errorf("formatSize(default) = %q", got)
	}
}
