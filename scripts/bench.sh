#!/bin/sh
# Times "strata import" against "containers-storage import-layer" and GNU
# tar on the same layer files, interleaved in one run (strata, c/s, tar,
# strata, ...), and prints median wall time, median peak RSS and the
# ratios; then times import-image of an 8-layer image against importing
# its layers one after another, and runs the Go benchmarks. Run as root.
#
#   scripts/bench.sh [CASE...]      (default: every case; see CASES below)
#
#   BENCH_CACHE   input cache dir (default .cache/bench in the repository);
#                 the inputs of the CASEs asked for are prepared there once,
#                 and each run also builds strata and makes its temp dir
#                 there
#   BENCH_RUNS    runs per tool and case (default 5)
#   BENCH_GO      0 skips the Go benchmarks (default 1)
#   BENCH_SKIP_IMAGE  non-empty skips import-image against 8 imports
#   BENCH_FS      where the tools write: "ext4" (default) a fresh ext4 with
#                 a journal (mkfs.ext4 defaults) on a loop file in the run's
#                 temp dir, unmounted at the end; "host" the cache dir's own
#                 file system, as it is
#   BENCH_FS_SIZE size of that loop file (default 48G, sparse)
#   STRATA_CONTAINERS_STORAGE   containers-storage binary (default: built
#                 by scripts/build-containers-storage.sh)
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
cache=${BENCH_CACHE:-$repo/.cache/bench}
runs=${BENCH_RUNS:-5}
CASES="rootfs.tar rootfs.tar.gz rootfs.tar.zst small.tar deep.tar hardlinks.tar big.tar"
[ $# -gt 0 ] && CASES="$*"

if [ "$(id -u)" != 0 ]; then
	echo "bench: needs root (debootstrap, chown, overlay)" >&2
	exit 1
fi

inputs=$CASES
[ -n "${BENCH_SKIP_IMAGE:-}" ] || inputs="$inputs image8"
# shellcheck disable=SC2086 # one word per input
scripts/bench/prepare.sh "$cache" $inputs
go build -o "$cache/strata" ./cmd/strata
strata=$cache/strata
cs=${STRATA_CONTAINERS_STORAGE:-$(scripts/build-containers-storage.sh)}

work=$(mktemp -d "$cache/run.XXXXXX")
results=$work/results
: >"$results"
cleanup() {
	if mountpoint -q "$work/t" 2>/dev/null; then umount "$work/t"; fi
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The tools write into $work/t. With BENCH_FS=ext4 that is a new ext4 with
# a journal: ext4 without a journal (some VM images) skips recently freed
# inodes on every create by reading their inode blocks, so after the
# previous run's rm -rf a create costs ~0.3 ms and every tool measures
# mostly that (see BENCHMARKS.md).
fs=${BENCH_FS:-ext4}
case $fs in
ext4)
	truncate -s "${BENCH_FS_SIZE:-48G}" "$work/ext4.img"
	mkfs.ext4 -q -F "$work/ext4.img"
	mkdir "$work/t"
	mount -o loop "$work/ext4.img" "$work/t"
	;;
host) ;;
*)
	echo "bench: BENCH_FS must be ext4 or host, not $fs" >&2
	exit 1
	;;
esac

# timed TOOL CASE CMD...: runs CMD under /usr/bin/time, appends
# "CASE TOOL seconds maxrss_kib" to the results.
timed() {
	tool=$1 case=$2
	shift 2
	if ! /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$work/out" 2>"$work/err"; then
		echo "bench: $tool on $case failed:" >&2
		cat "$work/err" >&2
		exit 1
	fi
	echo "$case $tool $(cat "$work/time")" >>"$results"
}

# Every run starts from an empty store or dir and ends with the writes on
# disk, so that no run pays for the one before it.
fresh() {
	if [ "$fs" = ext4 ]; then
		find "$work/t" -mindepth 1 -maxdepth 1 ! -name lost+found -exec rm -rf {} +
	else
		rm -rf "$work/t" && mkdir -p "$work/t"
	fi
	sync
}

run_strata() {
	fresh
	timed strata "$1" "$strata" --root "$work/t/g" --runroot "$work/t/r" import "$cache/$1"
}

# containers-storage mounts its graph root on any verb: give it its own
# roots and a private mount namespace, so nothing of it outlives the run.
run_cs() {
	fresh
	timed c/s "$1" unshare -m --propagation private \
		"$cs" --graph "$work/t/g" --run "$work/t/r" --storage-driver overlay \
		import-layer --file "$cache/$1"
}

run_tar() {
	fresh
	mkdir "$work/t/x"
	timed tar "$1" tar -xpf "$cache/$1" -C "$work/t/x"
}

echo "bench: $runs runs per tool, interleaved; load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for case in $CASES; do
	if [ ! -s "$cache/$case" ]; then
		echo "bench: no input $case, skipped" >&2
		continue
	fi
	echo "bench: $case" >&2
	for i in $(seq "$runs"); do
		run_strata "$case"
		run_cs "$case"
		run_tar "$case"
	done
done

# import-image against the same layers imported one after another.
if [ -z "${BENCH_SKIP_IMAGE:-}" ]; then
	echo "bench: image8 (import-image vs 8 imports in sequence)" >&2
	for i in $(seq "$runs"); do
		fresh
		timed strata-image image8 "$strata" --root "$work/t/g" --runroot "$work/t/r" \
			import-image "docker-archive:$cache/image8.tar"
		fresh
		timed strata-seq image8 sh -c '
			parent=""
			for n in 1 2 3 4 5 6 7 8; do
				parent=$("$0" --root "$1/g" --runroot "$1/r" import ${parent:+--parent "$parent"} \
					"$2/l$n.tar.gz" | tail -1) || exit 1
			done' "$strata" "$work/t" "$cache/image8"
	done
fi
fresh

echo
echo "machine: $(nproc) cores, $(awk '/model name/{$1=$2=$3="";print;exit}' /proc/cpuinfo | sed 's/^ *//'), kernel $(uname -r)"
echo "tools wrote to: $(findmnt -no SOURCE,FSTYPE,OPTIONS --target "$work/t") (BENCH_FS=$fs)"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg); runs per tool and case: $runs; containers-storage: $cs"
echo
"$(dirname "$0")/bench/report.sh" "$results"

if [ "${BENCH_GO:-1}" != 0 ]; then
	# The Go benchmarks make their stores in $TMPDIR: the same file system.
	mkdir -p "$work/t/gotmp"
	export TMPDIR="$work/t/gotmp"
	echo
	echo "Go benchmarks (go test -bench, 5 iterations each; TMPDIR on the tools' file system):"
	go test -run '^$' -benchtime 5x -bench 'BenchmarkApply|BenchmarkPut$' ./archive/ ./layers/ 2>&1 | grep -E '^Benchmark'
	go test -run '^$' -benchtime 20x -bench 'Open10000|Save10000|PutSmallIn10000|PutAdditionalLayer' ./layers/ 2>&1 | grep -E '^Benchmark'
	go test -run '^$' -benchtime 20x -bench 'Update' ./internal/crc64iso/ 2>&1 | grep -E '^Benchmark'
	go test -run '^$' -benchtime 10x -bench 'Mount500' ./overlay/ 2>&1 | grep -E '^Benchmark'
fi
