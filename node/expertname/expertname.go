// Package expertname says which expert names are the same name: the form a
// name takes as an adapter directory and vLLM lora_name (Sanitize), and the
// identity of a publisher's line of versions (Key: that form, case-folded).
//
// vLLM compares adapter names byte for byte and does no normalising of its
// own (docs/vllm.md); expertd writes every adapter under its sanitized name,
// so two names that sanitize alike would land on one directory, and two that
// differ only by case on two that a client could mistake for each other.
// Key makes both one name, for the rule that a name belongs to one publisher
// (docs/names.md).
package expertname

import "strings"

// MaxLen bounds a sanitized name, in bytes.
const MaxLen = 100

// Sanitize turns an expert's name into a single path element of
// [A-Za-z0-9._-]:
//   - every other character (a slash, a space, a non-ASCII letter, so any
//     Unicode confusable of an ASCII letter) is replaced by '_', so
//     "org/model v2" gives "org_model_v2" and "tеam" (a Cyrillic е) "t_am";
//   - runs of dots become one dot and leading dots are dropped, so no result
//     is ".", ".." or hidden ("../etc" gives "_etc");
//   - the result is cut to MaxLen bytes.
//
// ok is false for a name with no ASCII letter or digit left ("", "..",
// "日本"): it has no usable form.
func Sanitize(name string) (s string, ok bool) {
	var b strings.Builder
	b.Grow(min(len(name), MaxLen))
	alnum := false
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			alnum = true
		case r == '.':
			if b.Len() == 0 || strings.HasSuffix(b.String(), ".") {
				continue // no leading dot, no ".."
			}
		case r == '-' || r == '_':
		default:
			r = '_'
		}
		b.WriteRune(r)
		if b.Len() == MaxLen {
			break
		}
	}
	if !alnum {
		return "", false
	}
	return b.String(), true
}

// Key is the identity of name: its sanitized form in lower case, so that
// "team-sql", "Team-SQL" and "team/sql" are one name. A name with no usable
// form is its own identity, lower-cased, unless lower-casing gives it one
// ("İ" lowers to "i" and a combining dot): then it is that form's key, so
// that Key(Key(name)) == Key(name) (FuzzKey).
func Key(name string) string {
	if s, ok := Sanitize(name); ok {
		return strings.ToLower(s)
	}
	lower := strings.ToLower(name)
	if s, ok := Sanitize(lower); ok {
		return strings.ToLower(s)
	}
	return lower
}
