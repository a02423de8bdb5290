package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/layers"
	"github.com/stratafs/strata/overlay"
)

// openStore opens the layer store at the global roots with the overlay
// driver in ROOT/overlay. The caller closes it with closeStore.
//
// The driver's Cleanup is not called on the way out: it would unmount the
// layers this command mounted, and a mount made by "strata mount" must
// outlive the command.
func openStore(g *globals) (*layers.Store, error) {
	drv, err := overlay.New(filepath.Join(g.root, "overlay"), overlay.Options{
		Logger:                g.logger,
		AdditionalLayerStores: g.als,
	})
	if err != nil {
		return nil, fmt.Errorf("open overlay driver in %s: %w", g.root, err)
	}
	store, err := layers.Open(layers.Options{
		GraphRoot:   g.root,
		RunRoot:     g.runRoot,
		Driver:      drv,
		Logger:      g.logger,
		MaxDiffSize: g.maxDiffSize,
		// A root on a read-only mount can still be read: the verbs that
		// change it then fail with driver.ErrReadOnlyStore.
		ReadOnly: onReadOnlyMount(g.root),
	})
	if err != nil {
		return nil, fmt.Errorf("open layer store in %s: %w", g.root, err)
	}
	return store, nil
}

// onReadOnlyMount reports whether path exists on a read-only mount.
func onReadOnlyMount(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Flags&unix.ST_RDONLY != 0
}

// withStore opens the store, runs fn and closes the store, returning fn's
// error first.
func withStore(g *globals, fn func(*layers.Store) error) error {
	store, err := openStore(g)
	if err != nil {
		return err
	}
	err = fn(store)
	if cerr := store.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close layer store: %w", cerr)
	}
	return err
}

// withExistingStore is withStore for the verbs that only read: a store
// that is not there (a mistyped --root) is an error, not a new empty
// store, and nothing is created.
func withExistingStore(g *globals, fn func(*layers.Store) error) error {
	if err := requireStore(g); err != nil {
		return err
	}
	return withStore(g, fn)
}

// requireStore fails unless a layer store exists at the global root: one
// that has a layers.json (written by the first verb that changes the
// store).
func requireStore(g *globals) error {
	path := filepath.Join(g.root, "overlay-layers", "layers.json")
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no store at %s (%s does not exist)", g.root, path)
	}
	return err
}
