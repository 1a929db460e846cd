package safetensors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// tokens walks a JSON document token by token, so that duplicate keys, which
// encoding/json silently merges, can be detected. Syntax errors wrap bad.
type tokens struct {
	dec *json.Decoder
	bad error
}

func newTokens(doc []byte, bad error) *tokens {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	return &tokens{dec: dec, bad: bad}
}

func (t *tokens) next() (json.Token, error) {
	tok, err := t.dec.Token()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", t.bad, err)
	}
	return tok, nil
}

// delim consumes the delimiter want; what names the value in errors.
func (t *tokens) delim(what string, want json.Delim) error {
	tok, err := t.next()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("%w: %s: want %q, got %s", t.bad, what, want, describe(tok))
	}
	return nil
}

// str consumes a string; what names it in errors.
func (t *tokens) str(what string) (string, error) {
	tok, err := t.next()
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("%w: %s: want a string, got %s", t.bad, what, describe(tok))
	}
	return s, nil
}

// stringMap consumes null (returning nil) or an object of string values.
func (t *tokens) stringMap(what string) (map[string]string, error) {
	tok, err := t.next()
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("%w: %s: want an object, got %s", t.bad, what, describe(tok))
	}
	m := make(map[string]string)
	for t.dec.More() {
		k, err := t.str(what + " key")
		if err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("%w: %s: key %s", ErrDuplicate, what, quote(k))
		}
		v, err := t.str(what + " value for " + quote(k))
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, t.delim(what, '}')
}

// ints consumes an array of integers; malformed numbers wrap kind.
func (t *tokens) ints(what string, kind error) ([]int64, error) {
	if err := t.delim(what, '['); err != nil {
		return nil, err
	}
	var out []int64
	for t.dec.More() {
		tok, err := t.next()
		if err != nil {
			return nil, err
		}
		n, ok := tok.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%w: %s: want an integer, got %s", kind, what, describe(tok))
		}
		v, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %s is not an int64", kind, what, quote(string(n)))
		}
		out = append(out, v)
	}
	return out, t.delim(what, ']')
}

// skip consumes one value of any kind.
func (t *tokens) skip() error {
	var raw json.RawMessage
	if err := t.dec.Decode(&raw); err != nil {
		return fmt.Errorf("%w: %w", t.bad, err)
	}
	return nil
}

// end checks that only JSON whitespace follows the document.
func (t *tokens) end(doc []byte) error {
	for _, c := range doc[t.dec.InputOffset():] {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return fmt.Errorf("%w: data after the JSON object", t.bad)
		}
	}
	return nil
}

// describe names a token for an error message.
func describe(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case json.Delim:
		return strconv.Quote(string(v))
	case string:
		return "string " + quote(v)
	case json.Number:
		return "number " + quote(string(v))
	case bool:
		return strconv.FormatBool(v)
	}
	return fmt.Sprintf("%T", tok)
}

// fmtShape formats a shape for an error message, truncating long ones.
func fmtShape(shape []int64) string {
	const max = 8
	if len(shape) > max {
		return fmt.Sprintf("%v...(%d dims)", shape[:max], len(shape))
	}
	return fmt.Sprint(shape)
}

// quote quotes an untrusted string for an error message, truncating long ones.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
