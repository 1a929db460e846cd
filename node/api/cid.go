package api

import (
	"errors"
	"fmt"

	cid "github.com/ipfs/go-cid"
)

// ParseCID decodes a CID a person typed. Its error says so once:
// `"bad" is not a CID (reason)`, go-cid's reason without go-cid's own
// "invalid cid: " prefixes, which it nests.
func ParseCID(s string) (cid.Cid, error) {
	c, err := cid.Decode(s)
	if err != nil {
		var inv cid.ErrInvalidCid
		for errors.As(err, &inv) && inv.Err != nil {
			err = inv.Err
		}
		return cid.Undef, fmt.Errorf("%q is not a CID (%v)", s, err)
	}
	return c, nil
}
