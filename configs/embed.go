// Package configs holds expertd's default configuration file, embedded in the
// binary so that `expertd daemon` runs without one.
package configs

import _ "embed"

// Default is configs/expertd.yaml: every key with its default value.
//
//go:embed expertd.yaml
var Default []byte
