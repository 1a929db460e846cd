package compress

import (
	"encoding/json"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// ConfigFileFor is the only config file a container of peftType may carry
// and Expand may write: adapter_config.json, or config.json for a full
// fine-tuning residual. The config name comes from the container, so no
// other name (a path, a dot file, the weights file) is ever accepted.
func ConfigFileFor(peftType string) string {
	if peftType == PeftTypeFull {
		return ModelConfigFile
	}
	return AdapterConfigFile
}

// validateStrings checks the header's strings that end up as file names,
// file contents or text shown to a user: the config name is exactly
// ConfigFileFor(PeftType) or absent, the config is JSON, and the displayed
// fields hold no control or format characters (a bidi override would make
// inspect show something else than what is stored).
func (h *Header) validateStrings() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
	if !peftTypeOK(h.PeftType) {
		return bad("peft type %q: want letters, digits, _ or - (at most 64)", h.PeftType)
	}
	switch {
	case h.ConfigName == "" && h.Config != "":
		return bad("a config of %d bytes with no config name", len(h.Config))
	case h.ConfigName != "" && h.ConfigName != ConfigFileFor(h.PeftType):
		return bad("config name %q: a %s container may only restore %q, so nothing is written", h.ConfigName, h.PeftType, ConfigFileFor(h.PeftType))
	case h.ConfigName != "" && !json.Valid([]byte(h.Config)):
		return bad("%s is not valid JSON", h.ConfigName)
	}
	if len(h.Alpha) > 64 || !displayable(h.Alpha) {
		return bad("alpha %q", h.Alpha)
	}
	if len(h.Base) > 256 || !displayable(h.Base) {
		return bad("base fingerprint %q", h.Base)
	}
	return nil
}

func peftTypeOK(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// displayable reports whether s is valid UTF-8 without control (Cc) or
// format (Cf: bidi overrides, zero-width joiners) characters.
func displayable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}
