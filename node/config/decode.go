package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

var (
	durationType = reflect.TypeFor[time.Duration]()
	sizeType     = reflect.TypeFor[Size]()
	stringsType  = reflect.TypeFor[[]string]()
)

// decodeHook turns the values viper holds (YAML scalars, environment
// strings, flag values) into the Config's types.
var decodeHook = viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
	durationHook, sizeHook, listHook,
))

// durationHook reads "20s"-style strings; a bare number other than 0 is an
// error rather than nanoseconds.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != durationType {
		return data, nil
	}
	switch v := data.(type) {
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("invalid duration %q: want a number with a unit, e.g. 20s, 5m, 1h", v)
		}
		return d, nil
	case time.Duration:
		return v, nil
	}
	if isZeroNumber(reflect.ValueOf(data)) {
		return time.Duration(0), nil
	}
	return nil, fmt.Errorf("duration %v has no unit: write e.g. \"%vs\"", data, data)
}

func isZeroNumber(v reflect.Value) bool {
	switch {
	case v.CanInt():
		return v.Int() == 0
	case v.CanUint():
		return v.Uint() == 0
	case v.CanFloat():
		return v.Float() == 0
	}
	return false
}

// sizeHook reads byte counts and "256MiB"-style strings.
func sizeHook(from, to reflect.Type, data any) (any, error) {
	if to != sizeType {
		return data, nil
	}
	v := reflect.ValueOf(data)
	switch {
	case v.Kind() == reflect.String:
		return ParseSize(v.String())
	case v.CanInt():
		if v.Int() < 0 {
			return nil, fmt.Errorf("invalid size %d: negative", v.Int())
		}
		return Size(v.Int()), nil
	case v.CanUint():
		if v.Uint() > math.MaxInt64 {
			return nil, fmt.Errorf("invalid size %d: too large", v.Uint())
		}
		return Size(v.Uint()), nil
	case v.CanFloat():
		f := v.Float()
		if f < 0 || f != math.Trunc(f) || f >= math.MaxInt64 {
			return nil, fmt.Errorf("invalid size %v: want a whole number of bytes", f)
		}
		return Size(f), nil
	}
	return nil, fmt.Errorf("invalid size %v: %w", data, errSizeSyntax)
}

// listHook splits a comma-separated string (an environment variable or a
// flag) into a list, trimming spaces and dropping empty items.
func listHook(from, to reflect.Type, data any) (any, error) {
	s, ok := data.(string)
	if !ok || to != stringsType {
		return data, nil
	}
	out := []string{}
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out, nil
}

// decode fills c from v, turning mapstructure's errors into KeyErrors.
func decode(v *viper.Viper, c *Config) error {
	err := v.Unmarshal(c, decodeHook)
	if err == nil {
		return nil
	}
	var errs []error
	var walk func(error)
	walk = func(err error) {
		if de, ok := err.(*mapstructure.DecodeError); ok {
			var inner *mapstructure.DecodeError
			if errors.As(de.Unwrap(), &inner) {
				walk(de.Unwrap()) // the innermost name is the most precise key
				return
			}
			errs = append(errs, &KeyError{Key: de.Name(), Err: reason(de.Unwrap())})
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		default:
			errs = append(errs, err)
		}
	}
	walk(err)
	return errors.Join(errs...)
}

// reason rewrites mapstructure's type errors in the words of a config file.
func reason(err error) error {
	var pe *mapstructure.ParseError
	var ue *mapstructure.UnconvertibleTypeError
	switch {
	case errors.As(err, &pe):
		return fmt.Errorf("%#v is not %s", pe.Value, kindWords(pe.Expected.Type()))
	case errors.As(err, &ue):
		return fmt.Errorf("%#v is not %s", ue.Value, kindWords(ue.Expected.Type()))
	}
	return err
}

func kindWords(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list"
	case reflect.String:
		return "a string"
	}
	return "a " + t.String()
}
