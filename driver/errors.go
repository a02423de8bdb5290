package driver

import "errors"

// Sentinel errors. Drivers and the layer store wrap them with the layer id
// and path that failed; callers match them with errors.Is.
var (
	// ErrLayerUnknown: no layer (or Additional Layer Store layer) by that
	// id, name or digest.
	ErrLayerUnknown = errors.New("layer not known")
	// ErrLayerExists: a layer with that id already exists.
	ErrLayerExists = errors.New("layer already exists")
	// ErrNotSupported: the driver or kernel cannot do what was asked.
	ErrNotSupported = errors.New("not supported")
	// ErrInvalidArgument: an id, name, digest, reference or option is
	// malformed; returned before any path is built from it.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrTooManyLayers: the stack is deeper than the kernel can mount.
	ErrTooManyLayers = errors.New("too many layers")
	// ErrLayerHasChildren: the layer is the parent of other layers.
	ErrLayerHasChildren = errors.New("layer has children")
	// ErrLayerMounted: the layer is mounted.
	ErrLayerMounted = errors.New("layer is mounted")
	// ErrLayerNotMounted: unmount of a layer that is not mounted.
	ErrLayerNotMounted = errors.New("layer is not mounted")
	// ErrNameInUse: another layer already has that name.
	ErrNameInUse = errors.New("name is already in use")
	// ErrAmbiguous: an id prefix matches more than one layer.
	ErrAmbiguous = errors.New("ambiguous layer id prefix")
	// ErrInvalidLayerData: a layer tar or compressed stream is malformed,
	// unsafe or does not match the expected digest.
	ErrInvalidLayerData = errors.New("invalid layer data")
	// ErrReadOnlyStore: a change was asked of a store opened read-only.
	ErrReadOnlyStore = errors.New("store is read-only")
	// ErrStoreCorrupt: a metadata file cannot be parsed.
	ErrStoreCorrupt = errors.New("store metadata is corrupt")
	// ErrAdditionalLayerStoreGone: the store that provides a layer's files
	// is not reachable.
	ErrAdditionalLayerStoreGone = errors.New("additional layer store is not available")
)
