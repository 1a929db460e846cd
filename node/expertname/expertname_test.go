package expertname

import (
	"strings"
	"testing"
)

func TestKey(t *testing.T) {
	same := [][]string{
		{"team-sql", "Team-SQL", "TEAM-sql", "team-sql"},
		{"org/model v2", "org_model_v2", "Org Model V2"},
		{"tеam-sql", "t_am-sql", "tüam-sql"}, // a Cyrillic е, an ü: confusables of each other
	}
	for _, group := range same {
		for _, n := range group[1:] {
			if Key(n) != Key(group[0]) {
				t.Errorf("Key(%q) = %q, Key(%q) = %q: want one name", n, Key(n), group[0], Key(group[0]))
			}
		}
	}
	for _, pair := range [][2]string{{"team-sql", "team-sq1"}, {"tеam-sql", "team-sql"}, {"a.b", "a_b"}} {
		if Key(pair[0]) == Key(pair[1]) {
			t.Errorf("Key(%q) == Key(%q) = %q: want two names", pair[0], pair[1], Key(pair[0]))
		}
	}
	if Key("日本") == Key("中国") || Key("日本") != "日本" {
		t.Errorf("names with no usable form: Key(日本) = %q, Key(中国) = %q", Key("日本"), Key("中国"))
	}
}

func FuzzKey(f *testing.F) {
	for _, s := range []string{"", "../x", "Team-SQL", "données", ".a..b."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		k := Key(in)
		if Key(k) != k {
			t.Fatalf("Key(%q) = %q is not a fixed point (%q)", in, k, Key(k))
		}
		if isASCII(in) && Key(strings.ToUpper(in)) != k {
			t.Fatalf("Key(%q) = %q differs from Key of its upper case %q", in, k, Key(strings.ToUpper(in)))
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
