package node

import "strings"

func equalFold(a, b string) bool { return strings.EqualFold(a, b) }

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
