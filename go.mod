module github.com/stratafs/strata

go 1.26.0

require (
	github.com/google/renameio/v2 v2.0.2
	github.com/hanwen/go-fuse/v2 v2.12.1
	github.com/klauspost/compress v1.20.5
	github.com/moby/sys/mountinfo v0.7.3
	github.com/opencontainers/go-digest v1.0.0
	github.com/vbatts/tar-split v0.12.3
	golang.org/x/sys v0.50.0
)
