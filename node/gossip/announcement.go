package gossip

import (
	"crypto/sha256"
	"fmt"
	"math"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
	gproto "google.golang.org/protobuf/proto"

	"github.com/expertd/expertd/node/expert"
	pb "github.com/expertd/expertd/proto"
)

// Limits on announcements. An announcement that breaks one is invalid.
const (
	// MaxMessageSize bounds an encoded announcement, on the topic and in
	// a catalog.
	MaxMessageSize = 16 << 10
	// MaxClockSkew is how far in the future an announcement may be dated.
	MaxClockSkew = 10 * time.Minute

	maxNameLen         = 256
	maxPeftTypeLen     = 64
	maxBaseModelLen    = 256
	maxTargetModules   = 256
	maxTargetModuleLen = 128
	maxIDLen           = 128 // bytes of a binary CID or peer ID
	maxRank            = 1 << 20
	// MaxVersion bounds a version number: JSON clients read it exactly.
	MaxVersion = 1<<53 - 1
)

// Announcement says that Provider holds the expert CID, described by the
// metadata its Publisher gave it. The zero values of Name, PeftType,
// BaseModel, Rank, TargetModules, Params and Density mean "unknown".
//
// The metadata, Publisher included, is the provider's claim unless
// Envelope holds a publication of it (SignPublication): the publisher's
// signature over CID, Name, PeftType, BaseModel, Rank, TargetModules,
// Params, Density, Size, Publisher and Version, which must then equal the
// announcement's. Only a publication carries a Version: an announcement
// without an Envelope has none (0).
type Announcement struct {
	CID cid.Cid // root of the expert's container: CIDv1, raw or dag-pb, sha2-256
	expert.Metadata
	Publisher peer.ID // the node that created the expert
	Provider  peer.ID // the node that holds it and announces it
	Time      time.Time
	Envelope  []byte // the publisher's signed publication of the metadata, or nil
	// Version is the expert's place in its publisher's line of Name (see
	// Line): 1 for the first, one more for each next; 0 for none (a
	// publication made before versions, or no publication).
	Version uint64
	// Merge is, in a publication, how the expert was made by merging
	// others; nil otherwise, and in every announcement (see Merge).
	Merge *Merge
	// Outboard is, in a publication, the SHA-256 of the expert's outboard
	// (the hashes of its 64 KiB pieces: node/fetch's Outboard), which lets
	// fetchers verify and serve on each piece as it arrives; nil
	// otherwise, and in every announcement.
	Outboard []byte
}

// Validate reports whether a's fields are well formed (ErrInvalid
// otherwise, or ErrTooLarge for an oversized Envelope). It does not look
// at the time window nor at who sent it, nor does it verify the Envelope.
func (a Announcement) Validate() error {
	if err := a.validateMetadata(); err != nil {
		return err
	}
	if err := checkPeer("provider", a.Provider); err != nil {
		return err
	}
	if len(a.Envelope) > MaxEnvelopeSize {
		return fmt.Errorf("%w: envelope of %d bytes (limit %d)", ErrTooLarge, len(a.Envelope), MaxEnvelopeSize)
	}
	if a.Version != 0 && len(a.Envelope) == 0 {
		return fmt.Errorf("%w: version %d without a publication", ErrInvalid, a.Version)
	}
	return nil
}

// validateMetadata is Validate without Provider and Envelope: what a
// publication must satisfy.
func (a Announcement) validateMetadata() error {
	if err := checkCID(a.CID); err != nil {
		return err
	}
	if err := checkPeer("publisher", a.Publisher); err != nil {
		return err
	}
	if err := checkString("name", a.Name, maxNameLen); err != nil {
		return err
	}
	if err := checkString("peft type", a.PeftType, maxPeftTypeLen); err != nil {
		return err
	}
	if err := checkString("base model", a.BaseModel, maxBaseModelLen); err != nil {
		return err
	}
	if len(a.TargetModules) > maxTargetModules {
		return fmt.Errorf("%w: %d target modules (limit %d)", ErrInvalid, len(a.TargetModules), maxTargetModules)
	}
	for _, m := range a.TargetModules {
		if m == "" {
			return fmt.Errorf("%w: empty target module", ErrInvalid)
		}
		if err := checkString("target module", m, maxTargetModuleLen); err != nil {
			return err
		}
	}
	if a.Rank < 0 || a.Rank > maxRank {
		return fmt.Errorf("%w: rank %d", ErrInvalid, a.Rank)
	}
	if a.Params < 0 {
		return fmt.Errorf("%w: params %d", ErrInvalid, a.Params)
	}
	if !(a.Density >= 0 && a.Density <= 1) { // also rejects NaN
		return fmt.Errorf("%w: density %v", ErrInvalid, a.Density)
	}
	if a.Size <= 0 {
		return fmt.Errorf("%w: size %d", ErrInvalid, a.Size)
	}
	if a.Time.IsZero() || a.Time.UnixMilli() <= 0 {
		return fmt.Errorf("%w: no time", ErrInvalid)
	}
	if a.Version > MaxVersion {
		return fmt.Errorf("%w: version %d (limit %d)", ErrInvalid, a.Version, uint64(MaxVersion))
	}
	if len(a.Outboard) != 0 && len(a.Outboard) != sha256.Size {
		return fmt.Errorf("%w: outboard hash of %d bytes", ErrInvalid, len(a.Outboard))
	}
	return a.Merge.validate()
}

// checkCID accepts what the fetch protocol can serve: a CIDv1 of codec raw
// or dag-pb with a 32-byte sha2-256 multihash.
func checkCID(c cid.Cid) error {
	if !c.Defined() {
		return fmt.Errorf("%w: no CID", ErrInvalid)
	}
	if n := c.ByteLen(); n > maxIDLen {
		return fmt.Errorf("%w: CID of %d bytes", ErrInvalid, n)
	}
	p := c.Prefix()
	if p.Version != 1 || (p.Codec != cid.Raw && p.Codec != cid.DagProtobuf) {
		return fmt.Errorf("%w: CID %s is v%d codec 0x%x, want v1 raw or dag-pb", ErrInvalid, c, p.Version, p.Codec)
	}
	if p.MhType != mh.SHA2_256 || p.MhLength != sha256.Size {
		return fmt.Errorf("%w: CID %s is not sha2-256", ErrInvalid, c)
	}
	return nil
}

func checkPeer(what string, id peer.ID) error {
	if id == "" {
		return fmt.Errorf("%w: no %s", ErrInvalid, what)
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("%w: %s ID of %d bytes", ErrInvalid, what, len(id))
	}
	if _, err := peer.IDFromBytes([]byte(id)); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, what, err)
	}
	return nil
}

// CheckName reports whether name is a valid expert name (ErrInvalid
// otherwise): at most 256 bytes of UTF-8 without control or format
// characters.
func CheckName(name string) error { return checkString("name", name, maxNameLen) }

// checkString bounds s and keeps control and format characters out of
// what ends up in logs, terminals and web pages: a bidi override (U+202E)
// or a zero-width character makes a string display as another.
func checkString(what, s string, limit int) error {
	if len(s) > limit {
		return fmt.Errorf("%w: %s of %d bytes (limit %d)", ErrInvalid, what, len(s), limit)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not UTF-8", ErrInvalid, what)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: %s holds control character %U", ErrInvalid, what, r)
		}
		if unicode.Is(unicode.Cf, r) {
			return fmt.Errorf("%w: %s holds format character %U", ErrInvalid, what, r)
		}
	}
	return nil
}

// checkFresh reports whether a's time lies in [now-ttl, now+MaxClockSkew].
func checkFresh(a Announcement, now time.Time, ttl time.Duration) error {
	if a.Time.After(now.Add(MaxClockSkew)) {
		return fmt.Errorf("%w: %s is %v ahead", ErrFuture, a.CID, a.Time.Sub(now).Round(time.Second))
	}
	if a.Time.Before(now.Add(-ttl)) {
		return fmt.Errorf("%w: %s is %v old", ErrStale, a.CID, now.Sub(a.Time).Round(time.Second))
	}
	return nil
}

// toWire converts a to its wire form; a must be valid.
func toWire(a Announcement) *pb.Announcement {
	return &pb.Announcement{
		Cid:           a.CID.Bytes(),
		Name:          a.Name,
		PeftType:      a.PeftType,
		BaseModel:     a.BaseModel,
		Rank:          uint32(a.Rank),
		TargetModules: slices.Clone(a.TargetModules),
		Params:        uint64(a.Params),
		Density:       a.Density,
		Size:          uint64(a.Size),
		Publisher:     []byte(a.Publisher),
		Provider:      []byte(a.Provider),
		TimeUnixMs:    a.Time.UnixMilli(),
		Envelope:      a.Envelope,
		Version:       a.Version,
	}
}

// fromWire converts and validates a wire announcement, taking its slices:
// m must not be used afterwards.
func fromWire(m *pb.Announcement) (Announcement, error) {
	if len(m.GetCid()) > maxIDLen {
		return Announcement{}, fmt.Errorf("%w: CID of %d bytes", ErrInvalid, len(m.GetCid()))
	}
	c, err := cid.Cast(m.GetCid())
	if err != nil {
		return Announcement{}, fmt.Errorf("%w: CID: %v", ErrInvalid, err)
	}
	md, err := metadataFromWire(m)
	if err != nil {
		return Announcement{}, err
	}
	a := Announcement{
		CID:       c,
		Metadata:  md,
		Publisher: peer.ID(m.GetPublisher()),
		Provider:  peer.ID(m.GetProvider()),
		Time:      time.UnixMilli(m.GetTimeUnixMs()),
		Version:   m.GetVersion(),
	}
	// Unmarshalling allocated it: m shares it with nobody.
	if len(m.GetEnvelope()) > 0 {
		a.Envelope = m.GetEnvelope()
	}
	if err := a.Validate(); err != nil {
		return Announcement{}, err
	}
	return a, nil
}

// wireMetadata is what the Announcement and Publication messages carry of
// an expert's metadata.
type wireMetadata interface {
	GetName() string
	GetPeftType() string
	GetBaseModel() string
	GetRank() uint32
	GetTargetModules() []string
	GetParams() uint64
	GetDensity() float64
	GetSize() uint64
}

// metadataFromWire converts the metadata of a wire message, refusing
// numbers an expert.Metadata cannot hold (ErrInvalid). It takes the
// message's TargetModules: unmarshalling allocated them, the message
// shares them with nobody.
func metadataFromWire(m wireMetadata) (expert.Metadata, error) {
	if m.GetRank() > maxRank || m.GetParams() > math.MaxInt64 || m.GetSize() > math.MaxInt64 {
		return expert.Metadata{}, fmt.Errorf("%w: rank %d, params %d, size %d", ErrInvalid, m.GetRank(), m.GetParams(), m.GetSize())
	}
	md := expert.Metadata{
		Name:      m.GetName(),
		PeftType:  m.GetPeftType(),
		BaseModel: m.GetBaseModel(),
		Rank:      int(m.GetRank()),
		Params:    int64(m.GetParams()),
		Density:   m.GetDensity(),
		Size:      int64(m.GetSize()),
	}
	if len(m.GetTargetModules()) > 0 {
		md.TargetModules = m.GetTargetModules()
	}
	return md, nil
}

// encode returns the wire bytes of a, checking it first.
func encode(a Announcement) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	data, err := gproto.Marshal(toWire(a))
	if err != nil {
		return nil, fmt.Errorf("gossip: encoding %s: %w", a.CID, err)
	}
	if len(data) > MaxMessageSize {
		return nil, fmt.Errorf("%w: %s: %d bytes (limit %d)", ErrTooLarge, a.CID, len(data), MaxMessageSize)
	}
	return data, nil
}

// decode parses and validates the fields of one encoded announcement.
func decode(data []byte) (Announcement, error) {
	if len(data) > MaxMessageSize {
		return Announcement{}, fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, len(data), MaxMessageSize)
	}
	var m pb.Announcement
	if err := gproto.Unmarshal(data, &m); err != nil {
		return Announcement{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return fromWire(&m)
}

// checked is an announcement that passed verify.
type checked struct {
	Announcement
	// signed is when the publisher signed a's Envelope, which was
	// verified; zero if a has none.
	signed time.Time
}

// verify is the whole check of an announcement that sender vouches for
// (the signer of a gossipsub message or the remote end of a catalog
// stream), received at now: fields, provider, time window and, last as
// the costliest, the envelope.
func verify(a Announcement, sender peer.ID, now time.Time, ttl time.Duration) (checked, error) {
	if err := checkSender(a, sender, now, ttl); err != nil {
		return checked{}, err
	}
	signed, err := checkPublication(a)
	if err != nil {
		return checked{}, err
	}
	return checked{a, signed}, nil
}

// checkSender is verify without the envelope: a's provider is sender and
// its time is within the window.
func checkSender(a Announcement, sender peer.ID, now time.Time, ttl time.Duration) error {
	if a.Provider != sender {
		return fmt.Errorf("%w: %s names provider %s, sent by %s", ErrNotProvider, a.CID, a.Provider, sender)
	}
	return checkFresh(a, now, ttl)
}

// decodeVerify decodes data and verifies it as sent by sender at now; it is
// what the topic validator runs on every message.
func decodeVerify(data []byte, sender peer.ID, now time.Time, ttl time.Duration) (checked, error) {
	a, err := decode(data)
	if err != nil {
		return checked{}, err
	}
	return verify(a, sender, now, ttl)
}

// clone returns a copy of a that shares no memory with it.
func (a Announcement) clone() Announcement {
	a.TargetModules = slices.Clone(a.TargetModules)
	a.Envelope = slices.Clone(a.Envelope)
	return a
}
