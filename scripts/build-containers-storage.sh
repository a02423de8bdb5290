#!/bin/sh
# Builds the containers-storage CLI (go.podman.io/storage, cmd/containers-storage)
# that strata's interop tests use as a peer, and prints the binary's path.
#
# The build happens in a scratch module under a cache dir outside the
# repository, so strata's own go.mod never depends on containers/storage.
# An existing build of the same version is reused.
#
#   STRATA_CS_VERSION   module version to build (default v1.65.1)
#   STRATA_TEST_CACHE   cache root (default: $XDG_CACHE_HOME/strata or ~/.cache/strata)
#
# Usage: export STRATA_CONTAINERS_STORAGE=$(scripts/build-containers-storage.sh)
set -eu

version=${STRATA_CS_VERSION:-v1.65.1}
cache_root=${STRATA_TEST_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/strata}
dir=$cache_root/containers-storage-$version
bin=$dir/containers-storage

if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$dir"
cd "$dir"

# A module of our own whose only purpose is to pin the CLI's package.
if [ ! -f go.mod ]; then
	go mod init strata-interop-peer >&2
fi
cat >tools.go <<'GO'
//go:build tools

package tools

import _ "go.podman.io/storage/cmd/containers-storage"
GO
go get "go.podman.io/storage@$version" >&2
GOFLAGS=-mod=mod go mod tidy >&2

# btrfs headers are not needed for overlay; openpgp avoids gpgme's cgo.
go build -o "$bin.tmp" -tags "exclude_graphdriver_btrfs containers_image_openpgp" \
	go.podman.io/storage/cmd/containers-storage >&2
mv "$bin.tmp" "$bin"
echo "$bin"
