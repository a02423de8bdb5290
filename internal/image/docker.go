package image

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

// dockerManifestEntry is one image in a docker-archive's manifest.json.
type dockerManifestEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// readDockerArchive reads manifest.json and the config of the image tagged
// ref (or the only image).
func (img *Image) readDockerArchive(ref string) error {
	data, err := readVerified(img.src, "manifest.json", "", metadataLimit)
	if err != nil {
		return err
	}
	var entries []dockerManifestEntry
	if err := json.Unmarshal(data, &entries); err != nil {
		return fmt.Errorf("%w: manifest.json: %v", ErrInvalidImage, err)
	}

	var entry *dockerManifestEntry
	switch {
	case ref != "":
		for i := range entries {
			for _, tag := range entries[i].RepoTags {
				if tag == ref {
					entry = &entries[i]
				}
			}
		}
		if entry == nil {
			return fmt.Errorf("%w: no image tagged %q in manifest.json", ErrInvalidImage, ref)
		}
		img.Ref = ref
	case len(entries) == 1:
		entry = &entries[0]
		if len(entry.RepoTags) > 0 {
			img.Ref = entry.RepoTags[0]
		}
	default:
		return fmt.Errorf("%w: manifest.json lists %d images; name one with docker-archive:PATH:TAG", ErrInvalidImage, len(entries))
	}

	// The config's file name is its digest's hex ("<hex>.json" in older
	// archives, "blobs/sha256/<hex>" in newer ones): check it when so.
	configDigest := digestFromName(entry.Config)
	configData, err := readVerified(img.src, entry.Config, configDigest, metadataLimit)
	if err != nil {
		return err
	}
	diffIDs, err := parseDiffIDs(configData, len(entry.Layers))
	if err != nil {
		return err
	}
	img.ConfigDigest = digest.FromBytes(configData)

	for i, p := range entry.Layers {
		rc, size, err := img.src.open(p)
		if err != nil {
			return fmt.Errorf("layer %d: %w", i+1, err)
		}
		rc.Close()
		layer := Layer{DiffID: diffIDs[i], Size: size, path: p}
		if strings.HasPrefix(path.Clean(p), "blobs/") {
			// Newer docker saves name blobs by their digest; older
			// archives use v1 layer ids or diff IDs, which say nothing
			// about the stored bytes.
			layer.Digest = digestFromName(p)
		}
		img.Layers = append(img.Layers, layer)
	}
	return nil
}

// digestFromName returns sha256:<hex> when a file name carries a sha256
// hex (with or without an extension), else "".
func digestFromName(name string) digest.Digest {
	base := strings.TrimSuffix(path.Base(name), ".json")
	if strings.HasSuffix(path.Dir(name), "blobs/sha256") || len(base) == 64 {
		d := digest.NewDigestFromEncoded(digest.SHA256, base)
		if d.Validate() == nil {
			return d
		}
	}
	return ""
}
