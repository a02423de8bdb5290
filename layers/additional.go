package layers

import (
	"encoding/json"
	"fmt"
	"io"

	digest "github.com/opencontainers/go-digest"

	"github.com/stratafs/strata/driver"
)

// maxALSInfoSize bounds the info record read from an Additional Layer
// Store: a record is a few hundred bytes, a store is not trusted.
const maxALSInfoSize = 1 << 20

// alsInfo is the part of an ALS info record the store adopts (DESIGN.md,
// "Additional Layer Store"). Everything else in the record (id, parent,
// names, created, other flags, mount label, id maps) is ignored.
type alsInfo struct {
	CompressedDigest   digest.Digest `json:"compressed-diff-digest"`
	CompressedSize     int64         `json:"compressed-size"`
	UncompressedDigest digest.Digest `json:"diff-digest"`
	UncompressedSize   int64         `json:"diff-size"`
	TOCDigest          digest.Digest `json:"toc-digest"`
	CompressionType    Compression   `json:"compression"`
	UIDs               []uint32      `json:"uidset"`
	GIDs               []uint32      `json:"gidset"`
	Flags              struct {
		ExpectedDiffID digest.Digest `json:"expected-layer-diffid"`
	} `json:"flags"`

	raw []byte // the record as read
}

// tocDigester is met by driver handles that know the TOC digest they were
// looked up by (the overlay driver's do).
type tocDigester interface {
	TOCDigest() digest.Digest
}

// readALSInfo reads and checks the info record of handle. wantTOC, when
// not empty, is the TOC digest the layer was asked for. Errors match
// driver.ErrInvalidLayerData.
func readALSInfo(handle driver.AdditionalLayer, wantTOC digest.Digest) (*alsInfo, error) {
	rc, err := handle.Info()
	if err != nil {
		return nil, fmt.Errorf("additional layer info: %w", err)
	}
	defer rc.Close()
	record, err := io.ReadAll(io.LimitReader(rc, maxALSInfoSize+1))
	if err != nil {
		return nil, fmt.Errorf("additional layer info: %w", err)
	}
	if len(record) > maxALSInfoSize {
		return nil, fmt.Errorf("additional layer info is larger than %d bytes: %w",
			maxALSInfoSize, driver.ErrInvalidLayerData)
	}
	var info alsInfo
	if err := json.Unmarshal(record, &info); err != nil {
		return nil, fmt.Errorf("additional layer info is not a layer record: %v: %w",
			err, driver.ErrInvalidLayerData)
	}
	if err := info.check(wantTOC); err != nil {
		return nil, err
	}
	info.raw = record
	return &info, nil
}

// check rejects malformed digests, sizes and compression values, and a TOC
// digest other than wantTOC.
func (info *alsInfo) check(wantTOC digest.Digest) error {
	if info.TOCDigest == "" {
		return fmt.Errorf("additional layer info has no toc-digest: %w", driver.ErrInvalidLayerData)
	}
	for _, field := range []struct {
		name string
		d    digest.Digest
	}{
		{"compressed-diff-digest", info.CompressedDigest},
		{"diff-digest", info.UncompressedDigest},
		{"toc-digest", info.TOCDigest},
		{"flags.expected-layer-diffid", info.Flags.ExpectedDiffID},
	} {
		if field.d == "" {
			continue
		}
		if err := field.d.Validate(); err != nil {
			return fmt.Errorf("additional layer info %s %q: %v: %w",
				field.name, string(field.d), err, driver.ErrInvalidLayerData)
		}
	}
	if wantTOC != "" && info.TOCDigest != wantTOC {
		return fmt.Errorf("additional layer info has toc-digest %s, asked for %s: %w",
			info.TOCDigest, wantTOC, driver.ErrInvalidLayerData)
	}
	if info.CompressedSize < -1 || info.UncompressedSize < -1 {
		return fmt.Errorf("additional layer info has a negative size: %w", driver.ErrInvalidLayerData)
	}
	if info.CompressionType < Uncompressed || info.CompressionType > Zstd {
		return fmt.Errorf("additional layer info has compression %d: %w",
			int(info.CompressionType), driver.ErrInvalidLayerData)
	}
	return nil
}

// adoptInto copies into l what the layer store takes from an ALS record:
// digests, sizes, compression, uid/gid sets and the expected diff ID.
func (info *alsInfo) adoptInto(l *Layer) {
	l.CompressedDigest = info.CompressedDigest
	l.CompressedSize = info.CompressedSize
	l.UncompressedDigest = info.UncompressedDigest
	l.UncompressedSize = info.UncompressedSize
	l.TOCDigest = info.TOCDigest
	l.CompressionType = info.CompressionType
	l.UIDs = append([]uint32(nil), info.UIDs...)
	l.GIDs = append([]uint32(nil), info.GIDs...)
	if info.Flags.ExpectedDiffID != "" {
		if l.Flags == nil {
			l.Flags = map[string]any{}
		}
		l.Flags[flagExpectedDiffID] = info.Flags.ExpectedDiffID.String()
	}
}

// PutAdditionalLayer creates layer id (random when "") on top of parent
// (id, name or unique prefix; "" for none) whose files are those of the
// Additional Layer Store layer handle, and records it in layers.json like
// any other layer. No layer bytes are read. The record's digests, sizes,
// compression and uid/gid sets come from the store's info. On failure
// nothing is left: no record, no driver dirs, and the store's use count
// is as it was. The caller still releases handle. Takes the write lock of
// layers.lock.
func (s *Store) PutAdditionalLayer(id, parent string, names []string,
	handle driver.AdditionalLayer) (*Layer, error) {
	var wantTOC digest.Digest
	if h, ok := handle.(tocDigester); ok {
		wantTOC = h.TOCDigest()
	}
	info, err := readALSInfo(handle, wantTOC)
	if err != nil {
		return nil, err
	}
	return s.putAdditional(id, parent, names, handle, info)
}

// putAdditional records and creates the layer; see PutAdditionalLayer.
func (s *Store) putAdditional(id, parent string, names []string, handle driver.AdditionalLayer,
	info *alsInfo) (*Layer, error) {
	names, err := cleanNames(names)
	if err != nil {
		return nil, err
	}
	createFromStore := func(l *Layer) error {
		info.adoptInto(l)
		// CreateAs notifies the store's use only when it succeeds; abandon's
		// driver.Remove notifies the release of a layer it made.
		if err := handle.CreateAs(l.ID, l.Parent); err != nil {
			return fmt.Errorf("layer %s: create from additional layer store: %w", l.ID, err)
		}
		return nil
	}
	l, err := s.createLayer(id, parent, names, "", true, createFromStore)
	if err != nil {
		return nil, err
	}
	s.log.Debug("layer created from additional layer store", "id", l.ID, "parent", l.Parent,
		"toc-digest", l.TOCDigest)
	return l, nil
}

// AdditionalLayer is a layer offered by an Additional Layer Store, found
// with Store.LookupAdditionalLayer; image copiers use it to skip pulling a
// layer. Release it when done, whether or not it was put.
type AdditionalLayer struct {
	s      *Store
	handle driver.AdditionalLayer
	info   *alsInfo
}

// LookupAdditionalLayer asks the driver's Additional Layer Stores for the
// layer with TOC digest tocDigest for image ref and reads its info. It
// fails with driver.ErrLayerUnknown when no store offers it (pull the
// layer instead), driver.ErrInvalidArgument for a bad digest or ref,
// driver.ErrInvalidLayerData for a bad info record and
// driver.ErrNotSupported when the driver has no such stores. Takes no
// lock.
func (s *Store) LookupAdditionalLayer(tocDigest digest.Digest, ref string) (*AdditionalLayer, error) {
	drv, ok := s.drv.(driver.AdditionalLayerStoreDriver)
	if !ok {
		return nil, fmt.Errorf("driver %s: additional layer stores: %w", s.drv.Name(), driver.ErrNotSupported)
	}
	handle, err := drv.LookupAdditionalLayer(tocDigest, ref)
	if err != nil {
		return nil, err
	}
	info, err := readALSInfo(handle, tocDigest)
	if err != nil {
		handle.Release()
		return nil, fmt.Errorf("layer %s for %q: %w", tocDigest, ref, err)
	}
	return &AdditionalLayer{s: s, handle: handle, info: info}, nil
}

// PutAs creates layer id (random when "") on top of parent with this
// layer's files; see Store.PutAdditionalLayer.
func (a *AdditionalLayer) PutAs(id, parent string, names []string) (*Layer, error) {
	return a.s.putAdditional(id, parent, names, a.handle, a.info)
}

// UncompressedDigest is the layer's diff digest as the store states it:
// diff-digest, or else the expected diff ID; "" when it states neither.
func (a *AdditionalLayer) UncompressedDigest() digest.Digest {
	if a.info.UncompressedDigest != "" {
		return a.info.UncompressedDigest
	}
	return a.info.Flags.ExpectedDiffID
}

// CompressedSize is the blob's size as the store states it (0 or -1 when
// it does not say).
func (a *AdditionalLayer) CompressedSize() int64 { return a.info.CompressedSize }

// TOCDigest is the digest the layer was found by.
func (a *AdditionalLayer) TOCDigest() digest.Digest { return a.info.TOCDigest }

// InfoJSON returns the store's info record as read at lookup.
func (a *AdditionalLayer) InfoJSON() []byte { return append([]byte(nil), a.info.raw...) }

// Release tells the store the layer is no longer looked at. Calling it
// more than once has no further effect.
func (a *AdditionalLayer) Release() { a.handle.Release() }
