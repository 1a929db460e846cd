package handoff

import (
	"fmt"

	"github.com/expertd/expertd/node/expertname"
)

// MaxNameLen bounds a sanitized name, in bytes.
const MaxNameLen = expertname.MaxLen

// SanitizeName turns an expert's name into the adapter's directory name,
// which is also its vLLM lora_name: expertname.Sanitize, a single path
// element of [A-Za-z0-9._-] ("org/model v2" gives "org_model_v2", "../etc"
// gives "_etc"). A name with no ASCII letter or digit left ("", "..",
// "日本") is refused with ErrName. Distinct names can sanitize alike ("a/b"
// and "a_b"), or differ only by case: they are one name (expertname.Key),
// and the second expert to claim it gets ErrConflict from Materialize,
// unless it is a newer version of the same publisher's line.
func SanitizeName(name string) (string, error) {
	s, ok := expertname.Sanitize(name)
	if !ok {
		return "", fmt.Errorf("%w: %q has no letter or digit", ErrName, name)
	}
	return s, nil
}
