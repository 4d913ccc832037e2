package config

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// Size units. KB, MB and GB are powers of 1000; KiB, MiB and GiB are powers of 1024.
const (
	B   Size = 1
	KB  Size = 1000 * B
	MB  Size = 1000 * KB
	GB  Size = 1000 * MB
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
)

// sizeUnits lists the units largest first, the order String tries them in, so
// that a size prints with the smallest number: "64KiB", "10GB", "1024MB".
var sizeUnits = []struct {
	name string
	mult Size
}{
	{"GiB", GiB}, {"GB", GB}, {"MiB", MiB}, {"MB", MB}, {"KiB", KiB}, {"KB", KB},
	{"B", B},
}

const sizeUnitList = "B, KB, MB, GB, KiB, MiB, GiB"

// maxUnitText bounds the text ParseSize and ParseRate look at, so that a
// hostile file cannot make them do big-number arithmetic on megabytes of digits.
const maxUnitText = 64

// ParseDuration parses a Go duration string such as "250ms" or "1h30m".
// Zero and negative durations parse; Validate rejects them as bounds.
func ParseDuration(s string) (Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %s: use a number with a unit (ns, us, ms, s, m, h), e.g. \"250ms\"", quote(s))
	}
	return Duration(d), nil
}

// ParseSize parses a byte count: an integer ("512") or a number with one of
// the units B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024),
// for example "64KiB", "1.5MiB" or "10 MB". The result must be a whole number
// of bytes that fits in an int64. Zero and negative sizes parse; Validate
// rejects them as bounds.
func ParseSize(s string) (Size, error) {
	n, reason := parseSize(s)
	if reason != "" {
		return 0, fmt.Errorf("invalid size %s: %s", quote(s), reason)
	}
	return n, nil
}

// ParseRate parses a byte rate: a size as accepted by ParseSize followed by
// "/s", for example "1KiB/s" or "5000/s".
func ParseRate(s string) (Rate, error) {
	num, ok := strings.CutSuffix(s, "/s")
	if !ok {
		return 0, fmt.Errorf("invalid rate %s: want a size per second, e.g. \"1KiB/s\"", quote(s))
	}
	n, reason := parseSize(num)
	if reason != "" {
		return 0, fmt.Errorf("invalid rate %s: %s", quote(s), reason)
	}
	return Rate(n), nil
}

// parseSize returns the size, or a reason why s is not one.
func parseSize(s string) (Size, string) {
	if len(s) > maxUnitText {
		return 0, "too long"
	}
	i := len(s)
	for i > 0 && isLetter(s[i-1]) {
		i--
	}
	num, unit := strings.TrimSpace(s[:i]), s[i:]
	mult := B
	if unit != "" {
		mult = 0
		for _, u := range sizeUnits {
			if u.name == unit {
				mult = u.mult
			}
		}
		if mult == 0 {
			return 0, fmt.Sprintf("unknown unit %s (use %s)", quote(unit), sizeUnitList)
		}
	}
	neg := false
	if num != "" && (num[0] == '-' || num[0] == '+') {
		neg = num[0] == '-'
		num = num[1:]
	}
	whole, frac, hasDot := strings.Cut(num, ".")
	if !allDigits(whole) || (hasDot && !allDigits(frac)) {
		return 0, fmt.Sprintf("want an integer or a number with a unit (%s), e.g. \"64KiB\"", sizeUnitList)
	}
	v, ok := new(big.Int).SetString(whole+frac, 10)
	if !ok {
		return 0, "not a number"
	}
	v.Mul(v, big.NewInt(int64(mult)))
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil)
	q, r := new(big.Int).QuoRem(v, scale, new(big.Int))
	if r.Sign() != 0 {
		return 0, "not a whole number of bytes"
	}
	if neg {
		q.Neg(q)
	}
	if !q.IsInt64() {
		return 0, "out of range"
	}
	return Size(q.Int64()), ""
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String returns d in Go duration syntax without trailing zero units:
// "250ms", "1m30s", "5m", "1h".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}

// String returns s with the largest unit that divides it exactly ("64KiB",
// "8MiB", "10KB", "10GB"), or as a plain byte count ("1500").
func (s Size) String() string {
	if s != 0 {
		for _, u := range sizeUnits[:len(sizeUnits)-1] {
			if s%u.mult == 0 {
				return strconv.FormatInt(int64(s/u.mult), 10) + u.name
			}
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// String returns r as a size per second, "1KiB/s" or "5000/s".
func (r Rate) String() string { return Size(r).String() + "/s" }

// MarshalYAML writes d as its String form.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalYAML writes s as its String form.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalYAML writes r as its String form.
func (r Rate) MarshalYAML() (any, error) { return r.String(), nil }

// quote quotes s for a message, shortened when long.
func quote(s string) string { return quoteMax(s, 60) }

// quotePath quotes a file path for a message: whole, unless it is longer
// than any path the system accepts.
func quotePath(s string) string { return quoteMax(s, 4096) }

// quoteMax quotes s, shortened to max bytes.
func quoteMax(s string, max int) string {
	if len(s) > max {
		cut := max
		for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
			cut--
		}
		return strconv.Quote(s[:cut]) + "…"
	}
	return strconv.Quote(s)
}
