#!/bin/sh
# Prepares the inputs of scripts/bench.sh once into a cache dir and reuses
# them afterwards: a Debian rootfs (debootstrap --variant=minbase) as a
# plain, gzip and zstd layer tar, and synthetic tars (50,000 small files,
# one 1 GiB file, a deep tree, many hardlinks). Needs root (debootstrap).
#
#   scripts/bench/prepare.sh CACHE_DIR [INPUT...]
#
# INPUTs name what to prepare: case files of scripts/bench.sh (rootfs.tar,
# small.tar.gz, big.tar, ...) and image8; without any, everything.
#
#   BENCH_SUITE    Debian suite to bootstrap (default bookworm)
#   BENCH_MIRROR   Debian mirror (default: the first URI apt is set up with)
set -eu

cache=${1:?usage: prepare.sh CACHE_DIR [INPUT...]}
shift
wanted=${*:-rootfs small big deep hardlinks image8}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
here=$(cd "$(dirname "$0")/../.." && pwd)

log() { echo "bench prepare: $*" >&2; }

need() {
	for cmd in "$@"; do
		command -v "$cmd" >/dev/null 2>&1 && continue
		pkg=$cmd
		[ "$cmd" = debootstrap ] && pkg=debootstrap
		log "installing $pkg"
		if [ ! -e "$cache/.apt-updated" ]; then
			apt-get update -qq >&2 && touch "$cache/.apt-updated"
		fi
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >&2
	done
}

# wants NAME: whether an input whose file name starts with NAME is wanted.
wants() {
	for w in $wanted; do
		case $w in "$1"*) return 0 ;; esac
	done
	return 1
}

need zstd pigz
wants rootfs && need debootstrap
[ -x /usr/bin/time ] || need time

# The three compressions of one plain tar.
compress() {
	plain=$1
	[ -s "$plain.gz" ] || { pigz -6 -n -c "$plain" >"$plain.gz.tmp" && mv "$plain.gz.tmp" "$plain.gz"; }
	[ -s "$plain.zst" ] || { zstd -q -3 -T0 -c "$plain" >"$plain.zst.tmp" && mv "$plain.zst.tmp" "$plain.zst"; }
}

# Debian rootfs.
if wants rootfs && [ ! -s "$cache/rootfs.tar" ]; then
	suite=${BENCH_SUITE:-bookworm}
	mirror=${BENCH_MIRROR:-}
	if [ -z "$mirror" ]; then
		mirror=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2; exit}')
	fi
	[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
	dir=$cache/rootfs.dir
	rm -rf "$dir"
	log "debootstrap --variant=minbase $suite from $mirror (a few minutes)"
	debootstrap --variant=minbase "$suite" "$dir" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
		tail -20 "$cache/debootstrap.log" >&2
		exit 1
	}
	# Package caches are not part of an image.
	rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
	tar --numeric-owner --xattrs --xattrs-include='*' -C "$dir" -cf "$cache/rootfs.tar.tmp" .
	mv "$cache/rootfs.tar.tmp" "$cache/rootfs.tar"
	rm -rf "$dir"
fi
wants rootfs && compress "$cache/rootfs.tar"

# Synthetic layers.
gentar=$cache/gentar
if [ ! -x "$gentar" ]; then
	(cd "$here" && go build -o "$gentar" ./scripts/bench/gentar)
fi
# free_gib: GiB available on the cache's filesystem.
free_gib() { df -Pk "$cache" | awk 'NR==2 {print int($4 / 1048576)}'; }

for kind in small big deep hardlinks; do
	wants "$kind" || continue
	if [ "$kind" = big ] && [ ! -s "$cache/big.tar" ] && [ "$(free_gib)" -lt 4 ]; then
		log "skipping big.tar: less than 4 GiB free on $cache (it needs 1 GiB, and as much per run)"
		continue
	fi
	if [ ! -s "$cache/$kind.tar" ]; then
		log "generating $kind.tar"
		"$gentar" -kind "$kind" -o "$cache/$kind.tar"
	fi
done
wants small && compress "$cache/small.tar"

# An 8-layer image as a docker-archive: each layer 3,000 small files, gzip.
img=$cache/image8
if wants image8 && [ ! -s "$img.tar" ]; then
	log "generating image8.tar"
	rm -rf "$img" && mkdir -p "$img"
	diff_ids=""
	layer_names=""
	for i in 1 2 3 4 5 6 7 8; do
		"$gentar" -kind small -files 3000 -seed "$i" -prefix "layer$i/share" -o "$img/l$i.tar"
		diff_ids="$diff_ids${diff_ids:+,}\"sha256:$(sha256sum "$img/l$i.tar" | cut -d' ' -f1)\""
		pigz -6 -n "$img/l$i.tar"
		layer_names="$layer_names${layer_names:+,}\"l$i.tar.gz\""
	done
	printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]}}' \
		"$diff_ids" >"$img/config.json"
	printf '[{"Config":"config.json","RepoTags":["bench/image8:latest"],"Layers":[%s]}]' \
		"$layer_names" >"$img/manifest.json"
	tar -C "$img" -cf "$img.tar.tmp" manifest.json config.json \
		l1.tar.gz l2.tar.gz l3.tar.gz l4.tar.gz l5.tar.gz l6.tar.gz l7.tar.gz l8.tar.gz
	mv "$img.tar.tmp" "$img.tar"
fi

ls -l "$cache"/*.tar* >&2 2>/dev/null || true
