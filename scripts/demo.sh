#!/usr/bin/env bash
# Walks through strata with real Debian packages: each package's data tar
# becomes a layer, the three are stacked, a writable layer goes on top, and
# a program runs from the mounted tree. Everything lives in a temp dir that
# is removed at exit. Run as root: "make demo" or "scripts/demo.sh [BIN]".
#
#   STRATA_DEMO_CACHE   where the .deb files are kept (default .cache/demo)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
strata_bin=$(realpath "${1:-$repo/bin/strata}")
cache=${STRATA_DEMO_CACHE:-$repo/.cache/demo}
packages=(busybox-static hello netbase)

step() { printf '\n==> %s\n' "$*"; }
say() { printf '$ %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
	echo "demo.sh: run as root (it mounts overlayfs)" >&2
	exit 1
fi
if [ ! -x "$strata_bin" ]; then
	echo "demo.sh: no strata binary at $strata_bin (run: make build)" >&2
	exit 1
fi

# Tools: ar (binutils) splits a .deb, xz unpacks its data tar, gzip and zstd
# recompress two of them so that strata's format detection shows.
missing=()
command -v ar >/dev/null || missing+=(binutils)
command -v xz >/dev/null || missing+=(xz-utils)
command -v zstd >/dev/null || missing+=(zstd)
if [ ${#missing[@]} -gt 0 ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

work=$(mktemp -d /tmp/strata-demo.XXXXXX)
root=$work/root
runroot=$work/run
layer_ids=() # bottom first; removed top-down at exit when still there

strata() {
	say "strata ${*/#$work/\$WORK}"
	"$strata_bin" --root "$root" --runroot "$runroot" "$@"
}

cleanup() {
	local rc=$? i
	set +e
	for ((i = ${#layer_ids[@]} - 1; i >= 0; i--)); do
		"$strata_bin" --root "$root" --runroot "$runroot" unmount --force "${layer_ids[i]}" 2>/dev/null
		"$strata_bin" --root "$root" --runroot "$runroot" rm "${layer_ids[i]}" >/dev/null 2>&1
	done
	# Anything still mounted below the temp dir (an interrupted run).
	awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r |
		while read -r m; do umount -l "$m"; done
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT

step "Fetching ${packages[*]} with apt-get download into $cache"
mkdir -p "$cache"
for pkg in "${packages[@]}"; do
	if ! compgen -G "$cache/${pkg}_*.deb" >/dev/null; then
		download() { (cd "$cache" && apt-get -q -o APT::Sandbox::User=root download "$pkg"); }
		download || { apt-get update -qq && download; }
	fi
	ls -l "$cache/${pkg}"_*.deb
done

step "Unpacking each package's data tar (busybox plain, hello gzip, netbase zstd)"
extract() { # extract PKG OUT: the uncompressed data tar of PKG's .deb
	local deb member
	deb=$(compgen -G "$cache/${1}_*.deb" | head -n1)
	member=$(ar t "$deb" | grep '^data\.tar')
	case $member in
	*.xz) ar p "$deb" "$member" | xz -dc >"$2" ;;
	*.zst) ar p "$deb" "$member" | zstd -dc >"$2" ;;
	*.gz) ar p "$deb" "$member" | gzip -dc >"$2" ;;
	*) ar p "$deb" "$member" >"$2" ;;
	esac
}
extract busybox-static "$work/busybox.tar"
extract hello "$work/hello.tar"
gzip -9 "$work/hello.tar"
extract netbase "$work/netbase.tar"
zstd -q --rm "$work/netbase.tar"
ls -l "$work"/*.tar*

step "Importing the three as a chain (each names the previous as --parent)"
import() { # import NAME FILE [PARENT]: sets $id to the new layer's id
	local out
	out=$(strata import --name "$1" ${3:+--parent "$3"} "$2")
	echo "$out"
	id=$(tail -n1 <<<"$out")
	layer_ids+=("$id")
}
import busybox "$work/busybox.tar"
import hello "$work/hello.tar.gz" busybox
import netbase "$work/netbase.tar.zst" hello

step "Listing the store"
strata layers

step "Creating a writable layer on top and mounting it"
top=$(strata create --parent netbase --name scratch)
echo "$top"
layer_ids+=("$top")
mnt=$(strata mount scratch)
echo "$mnt"
say "ls \$MNT \$MNT/etc"
ls "$mnt" "$mnt/etc"

step "Changing etc/services and deleting etc/rpc in the mounted tree"
say "echo 'strata-demo 4242/tcp' >>\$MNT/etc/services; rm \$MNT/etc/rpc"
echo "strata-demo     4242/tcp" >>"$mnt/etc/services"
rm "$mnt/etc/rpc"

step "Running busybox from the mounted tree"
say "chroot \$MNT /bin/busybox sh -c '...'"
chroot "$mnt" /bin/busybox sh -c '
	echo "busybox sees: $(/bin/busybox grep strata-demo /etc/services)"
	/bin/busybox test -e /etc/rpc && echo "etc/rpc still there" || echo "etc/rpc is gone"
	/bin/busybox ls -l /usr/bin/hello
'

step "The writable layer's own files: a copy of services and a whiteout for rpc"
diff_dir=$root/overlay/$top/diff
say "ls -l \$ROOT/overlay/${top:0:12}.../diff/etc"
ls -l "$diff_dir/etc"
whiteout=$(stat -c '%F %t:%T' "$diff_dir/etc/rpc")
if [ "$whiteout" != "character special file 0:0" ]; then
	echo "demo.sh: etc/rpc in the diff dir is '$whiteout', want a 0:0 char device" >&2
	exit 1
fi
echo "etc/rpc is a character device 0:0: overlayfs's whiteout"

step "Details of the writable layer"
strata layer scratch

step "A layer with children cannot be removed"
if strata rm busybox; then
	echo "demo.sh: rm of a parent layer succeeded" >&2
	exit 1
fi

step "Unmounting and removing the layers top-down"
strata unmount scratch
for ((i = ${#layer_ids[@]} - 1; i >= 0; i--)); do
	strata rm "${layer_ids[i]}"
	unset 'layer_ids[i]'
done
strata layers

step "Done; the temp store $work is removed on exit"
