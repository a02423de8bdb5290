package main

import (
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/stratafs/strata/layers"
)

// sizeUnits are the suffixes parseSize accepts, base 1024.
var sizeUnits = []struct {
	suffix string
	shift  uint
}{{"K", 10}, {"M", 20}, {"G", 30}, {"T", 40}}

// parseSize reads a positive byte count: digits, optionally followed by K,
// M, G or T (KiB, MiB, GiB, TiB; lower case and a trailing "iB" or "B" are
// accepted too).
func parseSize(s string) (int64, error) {
	num, shift := strings.TrimSpace(s), uint(0)
	upper := strings.ToUpper(num)
	for _, u := range sizeUnits {
		for _, suffix := range []string{u.suffix + "IB", u.suffix + "B", u.suffix} {
			if strings.HasSuffix(upper, suffix) {
				num, shift = num[:len(num)-len(suffix)], u.shift
				break
			}
		}
		if shift != 0 {
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number of bytes, optionally with K, M, G or T (base 1024)", s)
	}
	if n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n << shift, nil
}

// formatSize writes n the short way parseSize reads: with the largest
// unit that divides it.
func formatSize(n int64) string {
	for i := len(sizeUnits) - 1; i >= 0; i-- {
		u := sizeUnits[i]
		if n > 0 && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", n>>u.shift, u.suffix)
		}
	}
	return strconv.FormatInt(n, 10)
}

// sizeFlag is a byte count flag read by parseSize.
type sizeFlag struct{ n *int64 }

func (f sizeFlag) String() string {
	if f.n == nil {
		return ""
	}
	return formatSize(*f.n)
}

func (f sizeFlag) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*f.n = n
	return nil
}

// maxSizeFlag declares --max-size on fs and returns where its value goes;
// the default is the store's own cap.
func maxSizeFlag(fs *flag.FlagSet) *int64 {
	n := layers.DefaultMaxDiffSize
	fs.Var(sizeFlag{&n}, "max-size",
		"refuse a layer larger than `SIZE` uncompressed: bytes, or with a K, M, G or T suffix (base 1024)")
	return &n
}
