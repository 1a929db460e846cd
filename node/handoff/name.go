package handoff

import (
	"fmt"
	"strings"
)

// MaxNameLen bounds a sanitized name, in bytes.
const MaxNameLen = 100

// SanitizeName turns an expert's name into the adapter's directory name,
// which is also its vLLM lora_name. The result is a single path element of
// [A-Za-z0-9._-]:
//   - every other character (a slash, a space, a non-ASCII letter) is
//     replaced by '_', so "org/model v2" gives "org_model_v2";
//   - runs of dots become one dot and leading dots are dropped, so no result
//     is ".", ".." or hidden ("../etc" gives "_etc");
//   - the result is cut to MaxNameLen bytes.
//
// A name with no ASCII letter or digit left ("", "..", "日本") is refused
// with ErrName. Distinct names can sanitize alike ("a/b" and "a_b"); the
// second expert to claim a name gets ErrConflict from Materialize.
func SanitizeName(name string) (string, error) {
	var b strings.Builder
	b.Grow(min(len(name), MaxNameLen))
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
		if b.Len() == MaxNameLen {
			break
		}
	}
	if !alnum {
		return "", fmt.Errorf("%w: %q has no letter or digit", ErrName, name)
	}
	return b.String(), nil
}
