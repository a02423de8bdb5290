package image

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

// Media types of the OCI image-spec and Docker's schema 2 that Open reads.
const (
	mediaTypeOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mediaTypeOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	annotationRefName       = "org.opencontainers.image.ref.name"
)

// metadataLimit caps the size of an index, manifest or config read into
// memory.
const metadataLimit = 16 << 20

// descriptor is an OCI content descriptor.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      digest.Digest     `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
	} `json:"platform,omitempty"`
}

// index is an OCI image index (index.json).
type index struct {
	Manifests []descriptor `json:"manifests"`
}

// manifest is an OCI image manifest.
type manifest struct {
	MediaType string       `json:"mediaType"`
	Config    descriptor   `json:"config"`
	Layers    []descriptor `json:"layers"`
}

// config holds the parts of an image config Open needs.
type config struct {
	RootFS struct {
		Type    string          `json:"type"`
		DiffIDs []digest.Digest `json:"diff_ids"`
	} `json:"rootfs"`
}

// blobPath is where an OCI layout keeps the blob with digest d.
func blobPath(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("%w: descriptor digest %q: %v", ErrInvalidImage, d, err)
	}
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded(), nil
}

// readDescriptor reads and verifies the blob a descriptor names.
func (img *Image) readDescriptor(d descriptor) ([]byte, error) {
	p, err := blobPath(d.Digest)
	if err != nil {
		return nil, err
	}
	data, err := readVerified(img.src, p, d.Digest, metadataLimit)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != d.Size {
		return nil, fmt.Errorf("%w: %s is %d bytes, descriptor says %d", ErrInvalidImage, p, len(data), d.Size)
	}
	return data, nil
}

// readOCILayout reads index.json, picks the manifest for ref (or the only
// one), descending into nested indexes by platform.
func (img *Image) readOCILayout(ref string) error {
	if !img.src.has("oci-layout") {
		return fmt.Errorf("%w: no oci-layout file", ErrInvalidImage)
	}
	data, err := readVerified(img.src, "index.json", "", metadataLimit)
	if err != nil {
		return err
	}
	var idx index
	if err := json.Unmarshal(data, &idx); err != nil {
		return fmt.Errorf("%w: index.json: %v", ErrInvalidImage, err)
	}

	desc, err := pickByRef(idx.Manifests, ref)
	if err != nil {
		return err
	}
	img.Ref = desc.Annotations[annotationRefName]
	if ref != "" {
		img.Ref = ref
	}

	for depth := 0; ; depth++ {
		if depth > 4 {
			return fmt.Errorf("%w: image indexes nested too deep", ErrInvalidImage)
		}
		if desc.MediaType != mediaTypeOCIIndex && desc.MediaType != mediaTypeDockerList {
			break
		}
		data, err := img.readDescriptor(desc)
		if err != nil {
			return err
		}
		var nested index
		if err := json.Unmarshal(data, &nested); err != nil {
			return fmt.Errorf("%w: index %s: %v", ErrInvalidImage, desc.Digest, err)
		}
		if desc, err = pickByPlatform(nested.Manifests); err != nil {
			return err
		}
	}

	if desc.MediaType != mediaTypeOCIManifest && desc.MediaType != mediaTypeDockerManifest {
		return fmt.Errorf("%w: manifest %s has media type %q", ErrInvalidImage, desc.Digest, desc.MediaType)
	}
	data, err = img.readDescriptor(desc)
	if err != nil {
		return err
	}
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%w: manifest %s: %v", ErrInvalidImage, desc.Digest, err)
	}

	configData, err := img.readDescriptor(m.Config)
	if err != nil {
		return err
	}
	diffIDs, err := parseDiffIDs(configData, len(m.Layers))
	if err != nil {
		return err
	}
	img.ConfigDigest = m.Config.Digest

	for i, l := range m.Layers {
		if strings.Contains(l.MediaType, "encrypted") {
			return fmt.Errorf("%w: layer %d is encrypted (%s)", ErrInvalidImage, i+1, l.MediaType)
		}
		p, err := blobPath(l.Digest)
		if err != nil {
			return err
		}
		img.Layers = append(img.Layers, Layer{
			Digest: l.Digest, DiffID: diffIDs[i], Size: l.Size, MediaType: l.MediaType,
			Annotations: l.Annotations, path: p,
		})
	}
	return nil
}

// parseDiffIDs returns the config's diff IDs, which must be one per layer.
func parseDiffIDs(data []byte, layers int) ([]digest.Digest, error) {
	var c config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%w: image config: %v", ErrInvalidImage, err)
	}
	if len(c.RootFS.DiffIDs) != layers {
		return nil, fmt.Errorf("%w: config lists %d diff IDs for %d layers", ErrInvalidImage, len(c.RootFS.DiffIDs), layers)
	}
	for _, d := range c.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("%w: config diff ID %q: %v", ErrInvalidImage, d, err)
		}
	}
	return c.RootFS.DiffIDs, nil
}

// pickByRef returns the manifest whose ref.name annotation is ref (the
// annotation may hold a full reference or just a tag), or the only one.
func pickByRef(manifests []descriptor, ref string) (descriptor, error) {
	if ref == "" {
		if len(manifests) != 1 {
			return descriptor{}, fmt.Errorf("%w: index lists %d images; name one with FORM:PATH:REF", ErrInvalidImage, len(manifests))
		}
		return manifests[0], nil
	}
	for _, m := range manifests {
		name := m.Annotations[annotationRefName]
		if name == ref || (name != "" && strings.HasSuffix(ref, ":"+name)) {
			return m, nil
		}
	}
	return descriptor{}, fmt.Errorf("%w: no image named %q in index", ErrInvalidImage, ref)
}

// pickByPlatform returns the linux manifest for this machine's
// architecture from a multi-platform index.
func pickByPlatform(manifests []descriptor) (descriptor, error) {
	for _, m := range manifests {
		if m.Platform != nil && m.Platform.OS == "linux" && m.Platform.Architecture == runtime.GOARCH {
			return m, nil
		}
	}
	if len(manifests) == 1 {
		return manifests[0], nil
	}
	return descriptor{}, fmt.Errorf("%w: no linux/%s image in index", ErrInvalidImage, runtime.GOARCH)
}
