// Package image reads container images from the three on-disk forms
// `strata import-image` accepts: an OCI image layout directory, an
// oci-archive tar (the same layout in a tar) and a docker-archive tar (what
// `docker save` and `podman save` write). Every blob is checked against the
// digest that names it while it is read.
package image

import (
	_ "crypto/sha256" // registers sha256 for go-digest
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

// AnnotationTOCDigest is the layer annotation eStargz images carry with
// the digest of the layer's table of contents; an Additional Layer Store
// is asked for the layer by this digest.
const AnnotationTOCDigest = "containerd.io/snapshot/stargz/toc.digest"

// ErrInvalidImage is matched (errors.Is) by every error about a malformed
// image: bad JSON, a missing blob, a digest or size that does not match.
var ErrInvalidImage = errors.New("invalid image")

// Format names an image's on-disk form.
type Format string

// The forms Open understands.
const (
	FormatOCILayout     Format = "oci"
	FormatOCIArchive    Format = "oci-archive"
	FormatDockerArchive Format = "docker-archive"
)

// Layer is one layer of an image, base layer first.
type Layer struct {
	// Digest is the digest of the blob as stored (compressed or not). For
	// a docker-archive it is not recorded anywhere and is "".
	Digest digest.Digest
	// DiffID is the digest of the uncompressed tar, from the image config.
	DiffID digest.Digest
	// Size is the blob's size in bytes.
	Size int64
	// MediaType is the manifest's media type for the blob ("" for a
	// docker-archive).
	MediaType string
	// Annotations are the manifest's annotations for the blob (such as
	// eStargz's TOC digest); nil for a docker-archive.
	Annotations map[string]string

	path string // blob location inside the source
}

// Image is an opened image. Close releases the file it reads from.
type Image struct {
	// Format is the form the source had.
	Format Format
	// Ref is the image's reference as the source records it (an OCI
	// ref.name annotation or a docker RepoTag); "" when it has none.
	Ref string
	// ConfigDigest is the digest of the image config.
	ConfigDigest digest.Digest
	// Layers lists the layers, base first.
	Layers []Layer

	src source
}

// source gives access to the files of an image layout, in a directory or
// a tar.
type source interface {
	open(name string) (io.ReadCloser, int64, error)
	has(name string) bool
	Close() error
}

// Open reads the manifest and config of the image at spec, which is a path
// optionally prefixed with its form ("oci:", "oci-archive:",
// "docker-archive:") and optionally followed by ":REF" to pick one image
// of several in an OCI index or docker-archive. Without a prefix the form
// is detected: a directory is an OCI layout, a tar holding manifest.json a
// docker-archive, a tar holding index.json an oci-archive.
func Open(spec string) (*Image, error) {
	format, path, ref := parseSpec(spec)

	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	var src source
	if fi.IsDir() {
		if format != "" && format != FormatOCILayout {
			return nil, fmt.Errorf("%s: %w: %s is a directory, not a tar", spec, ErrInvalidImage, path)
		}
		format = FormatOCILayout
		src = dirSource(path)
	} else {
		if format == FormatOCILayout {
			return nil, fmt.Errorf("%s: %w: an OCI layout must be a directory", spec, ErrInvalidImage)
		}
		ts, err := openTarSource(path)
		if err != nil {
			return nil, err
		}
		src = ts
		if format == "" {
			switch {
			case ts.has("manifest.json"):
				format = FormatDockerArchive
			case ts.has("index.json"):
				format = FormatOCIArchive
			default:
				ts.Close()
				return nil, fmt.Errorf("%s: %w: tar holds neither manifest.json nor index.json", spec, ErrInvalidImage)
			}
		}
	}

	img := &Image{Format: format, src: src}
	if format == FormatDockerArchive {
		err = img.readDockerArchive(ref)
	} else {
		err = img.readOCILayout(ref)
	}
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("%s: %w", spec, err)
	}
	return img, nil
}

// parseSpec splits "[FORM:]PATH[:REF]". A ":REF" suffix is recognised only
// after a form prefix, since plain paths may hold colons.
func parseSpec(spec string) (Format, string, string) {
	for _, f := range []Format{FormatOCIArchive, FormatDockerArchive, FormatOCILayout} {
		rest, ok := strings.CutPrefix(spec, string(f)+":")
		if !ok {
			continue
		}
		if path, ref, ok := strings.Cut(rest, ":"); ok {
			return f, path, ref
		}
		return f, rest, ""
	}
	return "", spec, ""
}

// Close releases the image's source.
func (img *Image) Close() error { return img.src.Close() }

// OpenLayer returns the blob of layer i. Reading it to the end checks its
// size and digest: a mismatch is returned instead of io.EOF, so a consumer
// that reads to EOF never takes a bad blob for a good one.
func (img *Image) OpenLayer(i int) (io.ReadCloser, error) {
	l := img.Layers[i]
	rc, size, err := img.src.open(l.path)
	if err != nil {
		return nil, fmt.Errorf("layer %d (%s): %w", i+1, l.path, err)
	}
	if size != l.Size {
		rc.Close()
		return nil, fmt.Errorf("layer %d (%s): %w: blob has %d bytes, manifest says %d",
			i+1, l.path, ErrInvalidImage, size, l.Size)
	}
	want := l.Digest
	if want == "" {
		// A docker-archive records only the diff ID; the layer store
		// checks that one after decompressing.
		return rc, nil
	}
	return &verifier{rc: rc, want: want, size: size, hash: want.Algorithm().Hash(),
		name: fmt.Sprintf("layer %d (%s)", i+1, l.path)}, nil
}

// verifier passes a blob through and checks its size and digest at EOF.
type verifier struct {
	rc   io.ReadCloser
	want digest.Digest
	size int64
	n    int64
	hash hash.Hash
	name string
}

// Read implements io.Reader.
func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.rc.Read(p)
	v.hash.Write(p[:n])
	v.n += int64(n)
	if errors.Is(err, io.EOF) {
		if v.n != v.size {
			return n, fmt.Errorf("%s: %w: blob truncated at %d of %d bytes", v.name, ErrInvalidImage, v.n, v.size)
		}
		got := digest.NewDigest(v.want.Algorithm(), v.hash)
		if got != v.want {
			return n, fmt.Errorf("%s: %w: blob digest is %s, want %s", v.name, ErrInvalidImage, got, v.want)
		}
	}
	return n, err
}

// Close implements io.Closer.
func (v *verifier) Close() error { return v.rc.Close() }

// readVerified reads a whole small blob (a manifest, index or config) and
// checks it against want when want is not "".
func readVerified(src source, name string, want digest.Digest, limit int64) ([]byte, error) {
	rc, size, err := src.open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > limit {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than the %d allowed", ErrInvalidImage, name, size, limit)
	}
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if want != "" {
		if err := want.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalidImage, name, err)
		}
		if got := want.Algorithm().FromBytes(data); got != want {
			return nil, fmt.Errorf("%w: %s has digest %s, want %s", ErrInvalidImage, name, got, want)
		}
	}
	return data, nil
}
