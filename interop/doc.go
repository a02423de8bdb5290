// Package interop holds tests that run strata against the containers-storage
// CLI (go.podman.io/storage, cmd/containers-storage) on one shared store.
// The CLI is a test peer only: scripts/build-containers-storage.sh builds it
// outside this module, and the tests find it through the environment
// variable STRATA_CONTAINERS_STORAGE; without it they skip.
package interop
