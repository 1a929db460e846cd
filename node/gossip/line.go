package gossip

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/node/expertname"
)

// Lines of versions.
//
// A publisher's experts of one name form a line: the pair (publisher,
// name), the name compared by expertname.Key, so that "team-sql",
// "Team-SQL" and a confusable are one name. A publication's Version orders
// the line: the publisher gives each new expert under the name the next
// number. Only a verified publication puts an expert in a line; an
// unsigned announcement carries no version.
//
// A node refuses, for each line, what contradicts the latest version it
// has seen (Service.checkLine): an older version (a replay of a superseded
// publication: it would roll the name back), another expert under the same
// version, and another name of the same publisher that is the same name
// under expertname.Key. Those refusals depend on what this node has seen:
// a peer forwarding such an announcement may simply not have seen the newer
// version yet, so it is ignored (not forwarded, nothing stored), not
// rejected, unless the line's owner itself sends it (its provider is its
// publisher and delivered it): no honest publisher contradicts its own
// line, and that one is rejected (penalized). The exception is an older
// version of its own within lineReorder of the newer one's arrival: gossip
// may deliver two versions published in quick succession out of order.
// Honest nodes never announce a version they know is superseded (the
// node's catalog leaves them out, and this node's own announcements are
// checked the same way).

// Line identifies a publisher's line of versions of a name.
type Line struct {
	Publisher peer.ID
	Key       string // expertname.Key of the name
}

// LineOf returns the line of a: its publisher's, under its name.
func LineOf(a Announcement) Line {
	return Line{Publisher: a.Publisher, Key: expertname.Key(a.Name)}
}

// Versioned reports whether e is a version of its line: its metadata come
// from a verified publication with a version.
func Versioned(e Entry) bool { return e.Signed && e.Version > 0 }

// lineLog is the validator's memory of lines: per line, the latest version
// accepted, its CID and the exact name it was published under, at most
// max lines, in 32 bytes each plus the map's slot (the line, the name and
// the CID known by 64-bit keyed hashes: a collision, which a peer cannot
// aim for without the key, would only make one announcement look like a
// contradiction of another line). When it is full, a line of a preferred
// publisher (trust.publishers) takes the place of another publisher's; any
// other new line goes unrecorded, and its announcements unchecked until
// room is made: a flood of made-up lines cannot push out those a node
// follows. It is not safe for concurrent use (the Service guards it with
// its mutex).
type lineLog struct {
	seed    maphash.Seed
	max     int
	prefer  map[peer.ID]bool
	reorder time.Duration // lineReorder; tests shorten it
	m       map[uint64]lineRecord
}

type lineRecord struct {
	name    uint64 // hash of the exact name
	cid     uint64 // hash of the CID's bytes
	version uint64
	at      int32 // when the version was recorded, in seconds from the log's epoch
	// preferred: the line's publisher is preferred (see evictFor).
	preferred bool
}

// lineReorder is how long after a version arrives an older one of the same
// line from its publisher is taken for gossip's reordering, not a replay.
const lineReorder = time.Minute

// lineEpoch is the origin of lineRecord.at: 2^31 seconds from it cover 68
// years.
var lineEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func newLineLog(max int, prefer map[peer.ID]bool) lineLog {
	return lineLog{seed: maphash.MakeSeed(), max: max, prefer: prefer, reorder: lineReorder, m: map[uint64]lineRecord{}}
}

func (l *lineLog) key(ln Line) uint64 { return maphash.Comparable(l.seed, ln) }

func (l *lineLog) record(a Announcement, now time.Time) lineRecord {
	return lineRecord{
		name:      maphash.String(l.seed, a.Name),
		cid:       maphash.String(l.seed, a.CID.KeyString()),
		version:   a.Version,
		at:        int32(min(max(now.Sub(lineEpoch)/time.Second, 0), math.MaxInt32)),
		preferred: l.prefer[a.Publisher],
	}
}

// check reports whether a, a verified publication with a version,
// contradicts its line as recorded: ErrNameTaken, ErrSuperseded or
// ErrVersionConflict. Announcements of no line pass. recent reports
// whether the version a contradicts was recorded less than l.reorder
// before now.
func (l *lineLog) check(a Announcement, now time.Time) (recent bool, err error) {
	if a.Version == 0 || len(a.Envelope) == 0 {
		return false, nil
	}
	r, ok := l.m[l.key(LineOf(a))]
	if !ok {
		return false, nil
	}
	n := l.record(a, now)
	recent = time.Duration(n.at-r.at)*time.Second < l.reorder
	switch {
	case r.name != n.name:
		return recent, fmt.Errorf("%w: %q by %s is the name of another expert of that publisher", ErrNameTaken, a.Name, a.Publisher)
	case a.Version < r.version:
		return recent, fmt.Errorf("%w: %q version %d by %s: version %d is out", ErrSuperseded, a.Name, a.Version, a.Publisher, r.version)
	case a.Version == r.version && n.cid != r.cid:
		return recent, fmt.Errorf("%w: %q version %d by %s is another expert (%s)", ErrVersionConflict, a.Name, a.Version, a.Publisher, a.CID)
	}
	return false, nil
}

// put records a, which passed check, as its line's latest version as of
// now, if it is newer than the one recorded.
func (l *lineLog) put(a Announcement, now time.Time) {
	if a.Version == 0 || len(a.Envelope) == 0 {
		return
	}
	k := l.key(LineOf(a))
	r, ok := l.m[k]
	if ok && r.version >= a.Version {
		return
	}
	n := l.record(a, now)
	if !ok && len(l.m) >= l.max && !l.evictFor(n) {
		return
	}
	l.m[k] = n
}

// evictFor makes room for a new line n if n's publisher is preferred, by
// dropping a line of a publisher that is not; it reports whether room was
// made.
func (l *lineLog) evictFor(n lineRecord) bool {
	if !n.preferred {
		return false
	}
	for k, r := range l.m { // map order: any one
		if !r.preferred {
			delete(l.m, k)
			return true
		}
	}
	return false
}

// latest returns the latest version recorded of ln.
func (l *lineLog) latest(ln Line) (uint64, bool) {
	r, ok := l.m[l.key(ln)]
	return r.version, ok
}

func (l *lineLog) len() int { return len(l.m) }

// LatestVersion returns the latest version of ln this node has accepted
// (from the topic, a catalog, or its own announcements and NoteLine), if it
// remembers the line.
func (s *Service) LatestVersion(ln Line) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lines.latest(ln)
}

// NoteLine records a, whose publication the caller verified (an expert
// this node stores, say), as a version of its line, if it is the newest:
// so that after a restart the node still refuses the versions it held
// newer ones of. It checks nothing.
func (s *Service) NoteLine(a Announcement) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines.put(a, time.Now())
}

// checkLine checks c, delivered by src at now, against its line
// (lineLog.check); a contradiction the line's owner sent itself is marked
// to be rejected (ErrOwnLine), unless it may be gossip's reordering (an
// older version soon after the newer one). With commit, an announcement
// that passes is recorded.
func (s *Service) checkLine(c checked, src peer.ID, now time.Time, commit bool) error {
	if c.signed.IsZero() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	recent, err := s.lines.check(c.Announcement, now)
	if err != nil {
		own := src == c.Provider && c.Provider == c.Publisher
		if own && !(recent && errors.Is(err, ErrSuperseded)) {
			return fmt.Errorf("%w: %w", ErrOwnLine, err)
		}
		return err
	}
	if commit {
		s.lines.put(c.Announcement, now)
	}
	return nil
}
