package gossip

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	gproto "google.golang.org/protobuf/proto"

	pb "github.com/expertd/expertd/proto"
)

// PublicationDomain is the signature domain of publication envelopes.
const PublicationDomain = "expertd-publication"

// MaxEnvelopeSize bounds an encoded publication envelope, so that an
// announcement carrying one stays within MaxMessageSize.
const MaxEnvelopeSize = 8 << 10

// publicationCodec is the payload type of publication envelopes: the
// private-use multicodec 0x3e7d01, as a uvarint.
var publicationCodec = binary.AppendUvarint(nil, 0x3e7d01)

func init() {
	record.RegisterType(&publication{})
}

// publication is the record a publisher signs: an expert's metadata, its
// Publisher and, in Time, when it was signed. Provider and Envelope are
// unused. It implements record.Record.
type publication struct {
	a Announcement
}

var _ record.Record = (*publication)(nil)

// Domain implements record.Record.
func (*publication) Domain() string { return PublicationDomain }

// Codec implements record.Record.
func (*publication) Codec() []byte { return slices.Clone(publicationCodec) }

// MarshalRecord implements record.Record.
func (p *publication) MarshalRecord() ([]byte, error) {
	if err := p.a.validateMetadata(); err != nil {
		return nil, err
	}
	a := p.a
	return gproto.Marshal(&pb.Publication{
		Cid:           a.CID.Bytes(),
		Name:          a.Name,
		PeftType:      a.PeftType,
		BaseModel:     a.BaseModel,
		Rank:          uint32(a.Rank),
		TargetModules: a.TargetModules,
		Params:        uint64(a.Params),
		Density:       a.Density,
		Size:          uint64(a.Size),
		Publisher:     []byte(a.Publisher),
		TimeUnixMs:    a.Time.UnixMilli(),
		Version:       a.Version,
		Merge:         a.Merge.toWire(),
		Outboard:      a.Outboard,
	})
}

// UnmarshalRecord implements record.Record; it accepts only a valid
// publication.
func (p *publication) UnmarshalRecord(data []byte) error {
	if len(data) > MaxEnvelopeSize {
		return fmt.Errorf("%w: publication of %d bytes (limit %d)", ErrTooLarge, len(data), MaxEnvelopeSize)
	}
	var m pb.Publication
	if err := gproto.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%w: %v", ErrPublication, err)
	}
	if len(m.GetCid()) > maxIDLen {
		return fmt.Errorf("%w: CID of %d bytes", ErrPublication, len(m.GetCid()))
	}
	c, err := cid.Cast(m.GetCid())
	if err != nil {
		return fmt.Errorf("%w: CID: %v", ErrPublication, err)
	}
	md, err := metadataFromWire(&m)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPublication, err)
	}
	a := Announcement{
		CID:       c,
		Metadata:  md,
		Publisher: peer.ID(m.GetPublisher()),
		Time:      time.UnixMilli(m.GetTimeUnixMs()),
		Version:   m.GetVersion(),
		Outboard:  m.GetOutboard(),
	}
	if a.Merge, err = mergeFromWire(m.GetMerge()); err != nil {
		return fmt.Errorf("%w: %w", ErrPublication, err)
	}
	if err := a.validateMetadata(); err != nil {
		return fmt.Errorf("%w: %w", ErrPublication, err)
	}
	p.a = a
	return nil
}

// SignPublication signs a's metadata (CID, Name, PeftType, BaseModel,
// Rank, TargetModules, Params, Density, Size, Publisher, Version, Merge and
// Outboard)
// with key, the publisher's libp2p key, as of a.Time (now if zero), and
// returns the
// envelope to set as Envelope in the announcements of a.CID. a.Publisher
// must be key's peer ID; a.Provider and a.Envelope are ignored.
func SignPublication(key crypto.PrivKey, a Announcement) ([]byte, error) {
	if key == nil {
		return nil, fmt.Errorf("%w: no key", ErrPublication)
	}
	signer, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("gossip: signing a publication: %w", err)
	}
	if a.Publisher != signer {
		return nil, fmt.Errorf("%w: publisher %s is not the signer %s", ErrPublication, a.Publisher, signer)
	}
	if a.Time.IsZero() {
		a.Time = time.Now()
	}
	a.Time = time.UnixMilli(a.Time.UnixMilli())
	a.Provider, a.Envelope = "", nil
	if err := a.validateMetadata(); err != nil { // Seal would hide the sentinel
		return nil, err
	}
	env, err := record.Seal(&publication{a: a}, key)
	if err != nil {
		return nil, fmt.Errorf("gossip: signing the publication of %s: %w", a.CID, err)
	}
	data, err := env.Marshal()
	if err != nil {
		return nil, fmt.Errorf("gossip: encoding the publication of %s: %w", a.CID, err)
	}
	if len(data) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: publication of %s: %d bytes (limit %d)", ErrTooLarge, a.CID, len(data), MaxEnvelopeSize)
	}
	return data, nil
}

// OpenPublication verifies a publication envelope: its size, its
// signature, that its signer is the publisher it names and that the
// metadata is valid. It returns the metadata as an Announcement whose Time
// is when it was signed, whose Envelope is (a copy of) envelope and whose
// Provider is empty. Errors wrap ErrPublication or ErrTooLarge.
func OpenPublication(envelope []byte) (Announcement, error) {
	if len(envelope) > MaxEnvelopeSize {
		return Announcement{}, fmt.Errorf("%w: envelope of %d bytes (limit %d)", ErrTooLarge, len(envelope), MaxEnvelopeSize)
	}
	if len(envelope) == 0 {
		return Announcement{}, fmt.Errorf("%w: no envelope", ErrPublication)
	}
	env, rec, err := record.ConsumeEnvelope(envelope, PublicationDomain)
	if err != nil {
		return Announcement{}, fmt.Errorf("%w: %w", ErrPublication, err)
	}
	p, ok := rec.(*publication)
	if !ok {
		return Announcement{}, fmt.Errorf("%w: payload is a %T", ErrPublication, rec)
	}
	signer, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil {
		return Announcement{}, fmt.Errorf("%w: signer: %v", ErrPublication, err)
	}
	if signer != p.a.Publisher {
		return Announcement{}, fmt.Errorf("%w: %s names publisher %s, signed by %s", ErrPublication, p.a.CID, p.a.Publisher, signer)
	}
	a := p.a.clone()
	a.Envelope = slices.Clone(envelope)
	return a, nil
}

// checkPublication verifies a's envelope, if any, and that a's metadata
// is the publication's; it returns when the publication was signed, or
// the zero time if a has no envelope.
func checkPublication(a Announcement) (time.Time, error) {
	if len(a.Envelope) == 0 {
		return time.Time{}, nil
	}
	p, err := OpenPublication(a.Envelope)
	if err != nil {
		return time.Time{}, err
	}
	if !sameMetadata(a, p) {
		return time.Time{}, fmt.Errorf("%w: announcement of %s differs from its publication", ErrPublication, a.CID)
	}
	return p.Time, nil
}

// sameMetadata reports whether a and b describe the same expert the same
// way, publisher and version included.
func sameMetadata(a, b Announcement) bool {
	return a.CID == b.CID && a.Metadata.Equal(b.Metadata) && a.Publisher == b.Publisher && a.Version == b.Version
}
