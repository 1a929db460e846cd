package handoff

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// baseModelKey is the adapter_config.json field vLLM's filesystem resolver
// compares with the served model.
const baseModelKey = "base_model_name_or_path"

// setTopLevelString returns the JSON object doc with the top-level key set
// to the string value. Every other byte is kept: an existing value (every
// occurrence, should the key repeat) is replaced in place, and a missing key
// is inserted first in the object.
func setTopLevelString(doc []byte, key, value string) ([]byte, error) {
	val, err := jsonString(value)
	if err != nil {
		return nil, err
	}

	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("%w: %s is not a JSON object", ErrNotAdapter, "adapter_config.json")
	}
	open := dec.InputOffset() // just past '{'
	var spans [][2]int64
	members := 0
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: adapter_config.json: %v", ErrNotAdapter, err)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%w: adapter_config.json: %v", ErrNotAdapter, err)
		}
		members++
		if k, _ := kt.(string); k == key {
			end := dec.InputOffset()
			spans = append(spans, [2]int64{end - int64(len(raw)), end})
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, fmt.Errorf("%w: adapter_config.json: %v", ErrNotAdapter, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: adapter_config.json: data after the object", ErrNotAdapter)
	}

	out := make([]byte, 0, len(doc)+len(key)+len(val)+8)
	if len(spans) == 0 {
		out = append(out, doc[:open]...)
		k, err := jsonString(key)
		if err != nil {
			return nil, err
		}
		out = fmt.Appendf(out, "\n  %s: %s", k, val)
		if members > 0 {
			out = append(out, ',')
		}
		return append(out, doc[open:]...), nil
	}
	prev := int64(0)
	for _, s := range spans {
		out = append(out, doc[prev:s[0]]...)
		out = append(out, val...)
		prev = s[1]
	}
	return append(out, doc[prev:]...), nil
}

// jsonString encodes s as a JSON string, leaving <, > and & as they are.
func jsonString(s string) ([]byte, error) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(s); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
