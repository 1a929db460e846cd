package handoff

import (
	"errors"
	"testing"
)

func TestSetTopLevelString(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"a": 1, "base_model_name_or_path": null, "b": [1]}`, `{"a": 1, "base_model_name_or_path": "m<&>", "b": [1]}`},
		{"{\n  \"base_model_name_or_path\" :\t\"old\"\n}", "{\n  \"base_model_name_or_path\" :\t\"m<&>\"\n}"},
		{`{"x":{"base_model_name_or_path":"keep"},"base_model_name_or_path":"old"}`, `{"x":{"base_model_name_or_path":"keep"},"base_model_name_or_path":"m<&>"}`},
		{`{"base_model_name_or_path":1,"base_model_name_or_path":2}`, `{"base_model_name_or_path":"m<&>","base_model_name_or_path":"m<&>"}`},
		{`{"r": 16}`, "{\n  \"base_model_name_or_path\": \"m<&>\",\"r\": 16}"},
		{` {}`, " {\n  \"base_model_name_or_path\": \"m<&>\"}"},
		{`{"n": 1e400, "base_model_name_or_path": null}`, `{"n": 1e400, "base_model_name_or_path": "m<&>"}`},
	} {
		got, err := setTopLevelString([]byte(c.in), baseModelKey, "m<&>")
		if err != nil || string(got) != c.want {
			t.Errorf("set(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{``, `[]`, `"x"`, `{"a":}`, `{"a":1} {}`, `{"a":1`} {
		if got, err := setTopLevelString([]byte(in), baseModelKey, "m"); !errors.Is(err, ErrNotAdapter) {
			t.Errorf("set(%q) = %q, %v; want ErrNotAdapter", in, got, err)
		}
	}
}
