package config

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
	}{
		{"0", 0},
		{"4096", 4096},
		{"64KiB", 64 << 10},
		{"256MiB", 256 << 20},
		{"4GiB", 4 << 30},
		{"2TiB", 2 << 40},
		{"1.5GiB", 3 << 29},
		{"100GB", 100e9},
		{"10kb", 10e3},
		{" 7 MB ", 7e6},
		{"12B", 12},
		{"256mib", 256 << 20},
	} {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "-1", "-1GiB", "abc", "12XB", "4G", "1.2.3MB", "9999999TiB", "1e3"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		} else if !strings.Contains(err.Error(), "invalid size") {
			t.Errorf("ParseSize(%q): %v does not say invalid size", in, err)
		}
	}
}

func TestSizeString(t *testing.T) {
	for _, tc := range []struct {
		in   Size
		want string
	}{
		{0, "0"}, {1000, "1000"}, {64 << 10, "64KiB"}, {256 << 20, "256MiB"}, {4 << 30, "4GiB"}, {3 << 40, "3TiB"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
		back, err := ParseSize(tc.in.String())
		if err != nil || back != tc.in {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in.String(), back, err, tc.in)
		}
	}
}
