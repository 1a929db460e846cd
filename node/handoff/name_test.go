package handoff

import (
	"errors"
	"strings"
	"testing"
)

func TestSanitizeName(t *testing.T) {
	long := strings.Repeat("a", 150)
	for _, c := range []struct{ in, want string }{
		{"python-lora", "python-lora"},
		{"Qwen2.5_coder", "Qwen2.5_coder"},
		{"../etc", "_etc"},
		{"../../etc/passwd", "_._etc_passwd"},
		{"a/b", "a_b"},
		{`a\b`, "a_b"},
		{"org/model v2", "org_model_v2"},
		{".hidden", "hidden"},
		{"a..b", "a.b"},
		{"données", "donn_es"},
		{"模型-v1", "__-v1"},
		{"a\x00b", "a_b"},
		{long, long[:MaxNameLen]},
	} {
		got, err := SanitizeName(c.in)
		if err != nil || got != c.want {
			t.Errorf("SanitizeName(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", ".", "..", "...", "/", "../", "日本", "__", "-"} {
		if got, err := SanitizeName(in); !errors.Is(err, ErrName) {
			t.Errorf("SanitizeName(%q) = %q, %v; want ErrName", in, got, err)
		}
	}
}

func FuzzSanitizeName(f *testing.F) {
	for _, s := range []string{"", "../x", "a/b", "données", ".a..b."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := SanitizeName(in)
		if err != nil {
			return
		}
		if got == "" || len(got) > MaxNameLen || got[0] == '.' || strings.Contains(got, "..") {
			t.Fatalf("SanitizeName(%q) = %q", in, got)
		}
		for _, r := range got {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
				t.Fatalf("SanitizeName(%q) = %q has %q", in, got, r)
			}
		}
		if again, err := SanitizeName(got); err != nil || again != got {
			t.Fatalf("SanitizeName(%q) = %q, not a fixed point (%q, %v)", in, got, again, err)
		}
	})
}
