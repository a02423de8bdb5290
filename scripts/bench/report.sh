#!/bin/sh
# Prints the medians of a scripts/bench.sh results file ("CASE TOOL
# seconds maxrss_kib" lines) as a table, with strata's ratio to the others.
#
#   scripts/bench/report.sh RESULTS
set -eu
awk '
function median(list,    n, a, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++) {
		t = a[i] + 0
		for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]
		a[j + 1] = t
	}
	if (n % 2) return a[(n + 1) / 2]
	return (a[n / 2] + a[n / 2 + 1]) / 2
}
{
	key = $1 SUBSEP $2
	wall[key] = wall[key] " " $3
	rss[key] = rss[key] " " $4
	if (!($1 in seen)) { seen[$1] = 1; order[++ncases] = $1 }
	if (!($2 in tseen)) { tseen[$2] = 1; tools[++ntools] = $2 }
}
END {
	printf "%-16s %-13s %9s %10s   %s\n", "case", "tool", "median s", "peak RSS", "strata / tool (wall)"
	for (c = 1; c <= ncases; c++) {
		cs = order[c]
		for (t = 1; t <= ntools; t++) {
			key = cs SUBSEP tools[t]
			if (!(key in wall)) continue
			m[tools[t]] = median(wall[key])
		}
		for (t = 1; t <= ntools; t++) {
			key = cs SUBSEP tools[t]
			if (!(key in wall)) continue
			ratio = ""
			if (tools[t] != "strata" && (cs SUBSEP "strata") in wall && m[tools[t]] > 0)
				ratio = sprintf("%.2f", m["strata"] / m[tools[t]])
			if (tools[t] == "strata-seq" && (cs SUBSEP "strata-image") in wall)
				ratio = sprintf("import-image is %.2fx faster", m["strata-seq"] / m["strata-image"])
			printf "%-16s %-13s %9.2f %7.1f MiB   %s\n", cs, tools[t], m[tools[t]],
				median(rss[key]) / 1024, ratio
		}
	}
}' "$1"
