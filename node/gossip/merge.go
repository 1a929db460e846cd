package gossip

import (
	"fmt"

	cid "github.com/ipfs/go-cid"

	pb "github.com/expertd/expertd/proto"
)

// Merge is how a publisher made an expert by merging others (expertd
// merge): the method and the parents' CIDs. It is part of the signed
// publication (SignPublication signs it, OpenPublication returns it) and
// of nothing else: an announcement's own fields do not carry it, so peers
// learn it, verified, from the envelope.
type Merge struct {
	Method  string    // "ta", "ties"
	Parents []cid.Cid // in the order merged; cid.Undef for a parent that had no CID
}

// Bounds of a Merge (expertd merges 2 to 64 experts).
const (
	MaxMergeParents = 64
	maxMethodLen    = 16
)

// validate checks m, if any.
func (m *Merge) validate() error {
	if m == nil {
		return nil
	}
	if m.Method == "" {
		return fmt.Errorf("%w: merge without a method", ErrInvalid)
	}
	if err := checkString("merge method", m.Method, maxMethodLen); err != nil {
		return err
	}
	if n := len(m.Parents); n < 2 || n > MaxMergeParents {
		return fmt.Errorf("%w: merge of %d parents (2 to %d)", ErrInvalid, n, MaxMergeParents)
	}
	for _, p := range m.Parents {
		if !p.Defined() {
			continue
		}
		if err := checkCID(p); err != nil {
			return fmt.Errorf("merge parent: %w", err)
		}
	}
	return nil
}

func (m *Merge) toWire() *pb.MergeProvenance {
	if m == nil {
		return nil
	}
	w := &pb.MergeProvenance{Method: m.Method, Parents: make([][]byte, len(m.Parents))}
	for i, p := range m.Parents {
		if p.Defined() {
			w.Parents[i] = p.Bytes()
		}
	}
	return w
}

// mergeFromWire reads a publication's merge, nil if it has none.
func mergeFromWire(w *pb.MergeProvenance) (*Merge, error) {
	if w == nil {
		return nil, nil
	}
	if n := len(w.GetParents()); n > MaxMergeParents {
		return nil, fmt.Errorf("%w: merge of %d parents (limit %d)", ErrInvalid, n, MaxMergeParents)
	}
	m := &Merge{Method: w.GetMethod(), Parents: make([]cid.Cid, len(w.GetParents()))}
	for i, b := range w.GetParents() {
		if len(b) == 0 {
			continue
		}
		if len(b) > maxIDLen {
			return nil, fmt.Errorf("%w: merge parent CID of %d bytes", ErrInvalid, len(b))
		}
		c, err := cid.Cast(b)
		if err != nil {
			return nil, fmt.Errorf("%w: merge parent CID: %v", ErrInvalid, err)
		}
		m.Parents[i] = c
	}
	return m, m.validate()
}
