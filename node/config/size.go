package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size is a number of bytes, written in a file as a plain integer or with a
// unit: "256MiB", "4GiB", "1.5GB", "64KiB". Units are case-insensitive;
// KB, MB, GB, TB are powers of 1000, KiB, MiB, GiB, TiB powers of 1024.
type Size int64

var sizeUnits = []struct {
	name string
	mult int64
}{
	{"tib", 1 << 40}, {"gib", 1 << 30}, {"mib", 1 << 20}, {"kib", 1 << 10},
	{"tb", 1e12}, {"gb", 1e9}, {"mb", 1e6}, {"kb", 1e3},
	{"b", 1},
}

var errSizeSyntax = errors.New("want bytes or a number with a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 256MiB")

// ParseSize reads a size such as "0", "4096", "64KiB" or "1.5GB".
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	end := 0
	for end < len(t) && (t[end] >= '0' && t[end] <= '9' || t[end] == '.') {
		end++
	}
	num, unit := t[:end], strings.ToLower(strings.TrimSpace(t[end:]))
	if num == "" {
		if strings.HasPrefix(t, "-") {
			return 0, fmt.Errorf("invalid size %q: negative", s)
		}
		return 0, fmt.Errorf("invalid size %q: %w", s, errSizeSyntax)
	}
	mult := int64(1)
	if unit != "" {
		found := false
		for _, u := range sizeUnits {
			if unit == u.name {
				mult, found = u.mult, true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("invalid size %q: unknown unit %q: %w", s, t[end:], errSizeSyntax)
		}
	}
	if n, err := strconv.ParseInt(num, 10, 64); err == nil {
		if n > math.MaxInt64/mult {
			return 0, fmt.Errorf("invalid size %q: too large", s)
		}
		return Size(n * mult), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %w", s, errSizeSyntax)
	}
	b := f * float64(mult)
	if b >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return Size(b), nil
}

// String writes the size with the largest binary unit that divides it, or
// in bytes: "256MiB", "4GiB", "1000".
func (s Size) String() string {
	if s == 0 {
		return "0"
	}
	for _, u := range sizeUnits[:4] {
		if s%Size(u.mult) == 0 {
			return strconv.FormatInt(int64(s)/u.mult, 10) + sizeUnitName(u.name)
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

func sizeUnitName(lower string) string { return strings.ToUpper(lower[:1]) + "i" + "B" }

// MarshalText writes String.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads ParseSize.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
