package main

import (
	"fmt"
	"path/filepath"

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
		GraphRoot: g.root,
		RunRoot:   g.runRoot,
		Driver:    drv,
		Logger:    g.logger,
	})
	if err != nil {
		return nil, fmt.Errorf("open layer store in %s: %w", g.root, err)
	}
	return store, nil
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
