// Package hostile builds the corpus of hostile layer blobs that strata's
// robustness tests apply: escapes through names, symlinks and hardlinks,
// odd whiteouts, malformed tars and compression, bombs. Each case carries
// the exact outcome a correct store produces, so the corpus is both the
// input and the assertion.
//
// Cases depend on the absolute path of a sentinel directory (the victim)
// that the test places next to the store: a case that would escape the
// layer root is aimed at it, so the test sees the escape by comparing the
// victim before and after. The victim holds a file "hello" (content
// "hello") and a directory "sub".
package hostile

import (
	"path"
	"sort"
	"strings"
)

// Case is one hostile input and what must come of it.
type Case struct {
	// Name starts with the case id: "Hnn" for this corpus, "Cnn" for a
	// case of shared/cases/README.md.
	Name string
	// Blob is the layer as the store receives it.
	Blob []byte
	// StoreOnly marks a blob that only the layer store's pipeline can
	// judge (compression, framing after the tar, digests): archive.Apply
	// alone is not run on it.
	StoreOnly bool
	// Huge marks an entry whose apparent size is far beyond its bytes (a
	// sparse file). It is informational: every test runs such a case at
	// full size, the store's Put and Diff included, since the tar-split
	// recorder and the export keep sparse entries compact.
	Huge bool
	// ExpectedDigest, when set, is passed to Put as the expected
	// uncompressed digest.
	ExpectedDigest string
	// WantErr is "" when the layer must apply; otherwise the error must
	// contain it (the entry's name, quoted as the error quotes it, or a
	// phrase).
	WantErr string
	// Tree is the exact content of the layer's diff after a successful
	// apply, by path ("." is the root), described by Describe's format.
	Tree map[string]string
}

// Victim returns the sentinel dir's layout the cases expect: path ->
// description in Describe's format.
func Victim() map[string]string {
	return map[string]string{".": "dir", "hello": "file:hello", "sub": "dir"}
}

// ups is enough ".." components to reach "/" from any test layer root.
var ups = strings.Repeat("../", 24)

// inside is where an absolute host path lands when resolved in the layer.
func inside(abs string) string { return strings.TrimPrefix(path.Clean(abs), "/") }

// tree builds an expected tree: the root is a plain dir unless given, and
// every parent of a listed path is a dir unless listed.
func tree(kv ...string) map[string]string {
	t := map[string]string{".": "dir"}
	for i := 0; i+1 < len(kv); i += 2 {
		t[kv[i]] = kv[i+1]
	}
	for p := range t {
		for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := t[d]; !ok {
				t[d] = "dir"
			}
		}
	}
	return t
}

// errEntry is the WantErr of an error naming entry name.
func errEntry(name string) string { return `entry "` + name + `"` }

// Corpus returns every case, aimed at the sentinel dir victim (absolute).
func Corpus(victim string) []Case {
	var all []Case
	all = append(all, nameCases(victim)...)
	all = append(all, symlinkCases(victim)...)
	all = append(all, hardlinkCases(victim)...)
	all = append(all, whiteoutCases(victim)...)
	all = append(all, entryCases(victim)...)
	all = append(all, framingCases()...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all
}
