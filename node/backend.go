package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/internal/slogutil"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/fetch"
	"github.com/expertd/expertd/node/gossip"
	"github.com/expertd/expertd/node/store"
	"github.com/expertd/expertd/node/unixfs"
)

var _ api.Backend = (*Node)(nil)

// Identity implements api.Backend.
func (n *Node) Identity() api.Identity {
	id := api.Identity{ID: n.p2p.ID().String(), Reachability: n.p2p.Reachability(), RelayService: n.p2p.RelayService()}
	for _, a := range n.p2p.Addrs() {
		id.Addrs = append(id.Addrs, a.String()+"/p2p/"+id.ID)
	}
	for _, r := range n.p2p.Reservations() {
		rv := api.Reservation{Relay: r.Relay.String()}
		for _, a := range r.Addrs {
			rv.Addrs = append(rv.Addrs, a.String())
		}
		id.Reservations = append(id.Reservations, rv)
	}
	return id
}

// Peers implements api.Backend.
func (n *Node) Peers() []api.Peer {
	var out []api.Peer
	for _, p := range n.p2p.Network().Peers() {
		ap := api.Peer{ID: p.String()}
		for _, c := range n.p2p.Network().ConnsToPeer(p) {
			if a := c.RemoteMultiaddr().String(); !slices.Contains(ap.Addrs, a) {
				ap.Addrs = append(ap.Addrs, a)
			}
		}
		if l := n.p2p.Peerstore().LatencyEWMA(p); l > 0 {
			ap.LatencyMS = float64(l) / float64(time.Millisecond)
		}
		for _, c := range n.p2p.Conns(p) {
			ac := api.Conn{Addr: c.Addr.String(), Kind: string(c.Kind), LimitBytes: c.LimitBytes, LimitSeconds: int64(c.LimitDuration / time.Second)}
			if c.Relay != "" {
				ac.Relay = c.Relay.String()
			}
			ap.Conns = append(ap.Conns, ac)
		}
		out = append(out, ap)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Experts implements api.Backend.
func (n *Node) Experts(f api.Filter, p api.Page) api.ExpertPage {
	return p.Of(n.experts(f))
}

// experts lists every expert f selects: local ones, then with f.Remote
// those known from the swarm only.
func (n *Node) experts(f api.Filter) []api.Expert {
	var out []api.Expert
	local := map[string]bool{}
	match := func(e api.Expert) bool {
		return (f.BaseModel == "" || e.BaseModel == f.BaseModel) &&
			(f.PeftType == "" || strings.EqualFold(e.PeftType, f.PeftType)) &&
			(f.Name == "" || strings.Contains(strings.ToLower(e.Name), strings.ToLower(f.Name)))
	}
	for _, m := range n.store.List() {
		local[m.CID] = true
		if e := n.expertOf(m); match(e) {
			e.Trusted, e.NotHandedOff = n.trustedMeta(m), n.notHandedOff(m)
			e.Providers = n.otherProviders(m.CID)
			out = append(out, e)
		}
	}
	if f.Remote {
		for _, en := range n.gossip.View().List(gossip.Filter{BaseModel: f.BaseModel, PeftType: f.PeftType, Name: f.Name}) {
			if !local[en.CID.String()] {
				e := expertFromEntry(en)
				e.Trusted, e.NotHandedOff = n.trustedEntry(en), n.wouldRefuse(en)
				out = append(out, e)
			}
		}
	}
	return out
}

// otherProviders lists the peers other than this node known to provide
// the expert c.
func (n *Node) otherProviders(c string) []string {
	id, err := cid.Decode(c)
	if err != nil {
		return nil
	}
	en, ok := n.gossip.View().Get(id)
	if !ok {
		return nil
	}
	var out []string
	for _, p := range en.Providers {
		if p.ID != n.p2p.ID() {
			out = append(out, p.ID.String())
		}
	}
	return out
}

// Expert implements api.Backend.
func (n *Node) Expert(s string) (api.Expert, error) {
	c, err := parseCID(s)
	if err != nil {
		return api.Expert{}, err
	}
	if m, err := n.store.Get(c); err == nil {
		e := n.expertOf(m)
		if en, ok := n.gossip.View().Get(c); ok {
			e.Providers = expertFromEntry(en).Providers
		}
		e.Trusted, e.NotHandedOff = n.trustedMeta(m), n.notHandedOff(m)
		return e, nil
	}
	if en, ok := n.gossip.View().Get(c); ok {
		e := expertFromEntry(en)
		e.Trusted, e.NotHandedOff = n.trustedEntry(en), n.wouldRefuse(en)
		return e, nil
	}
	return api.Expert{}, fmt.Errorf("expert %s: %w", c, api.ErrNotFound)
}

// Publish implements api.Backend: it compresses an adapter directory (or
// takes a ready container), signs its publication as the next version of
// this node's line of the name (docs/names.md), stores and pins it,
// announces it and provides it on the DHT. It is all or nothing: the
// request and the publication are checked before anything is stored.
// Publishing bytes already published here under the same name publishes
// them again, as the version they are; under another name it fails with
// ErrConflict, and so does a name that is another spelling of one this
// node publishes.
func (n *Node) Publish(ctx context.Context, r api.PublishRequest) (api.Expert, error) {
	if r.Path == "" {
		return api.Expert{}, fmt.Errorf("%w: path is required", api.ErrBadRequest)
	}
	name := r.Name
	if name == "" {
		name = filepath.Base(filepath.Clean(r.Path))
	}
	if err := gossip.CheckName(name); err != nil {
		return api.Expert{}, fmt.Errorf("%w: %v", api.ErrBadRequest, err)
	}
	// Paths are the daemon's: a relative one would be read from wherever
	// the daemon was started.
	for what, p := range map[string]string{"path": r.Path, "base": r.Base} {
		if p != "" && !filepath.IsAbs(p) {
			return api.Expert{}, fmt.Errorf("%w: %s %q must be an absolute path", api.ErrBadRequest, what, p)
		}
	}
	st, err := os.Stat(r.Path)
	if err != nil {
		return api.Expert{}, fmt.Errorf("%w: %v", api.ErrBadRequest, err)
	}
	file := r.Path
	if st.IsDir() {
		if file, err = n.compressDir(r); err != nil {
			return api.Expert{}, err
		}
		defer os.Remove(file)
	}
	meta, a, err := n.describe(file, name)
	if err != nil {
		return api.Expert{}, err
	}
	c := a.CID
	n.lines.publishing.Lock() // one version at a time
	defer n.lines.publishing.Unlock()
	if old, err := n.store.Get(c); err == nil && len(old.Envelope) > 0 {
		if old.Name != name {
			return api.Expert{}, fmt.Errorf("%w: these bytes are already published as %q (%s)", api.ErrConflict, old.Name, c)
		}
		// The same expert again: pin it and announce it anew, as the
		// version it is.
		meta.Envelope = old.Envelope
	} else if a.Outboard, err = fetch.OutboardHash(file); err != nil {
		return api.Expert{}, err
	} else if meta.Envelope, err = n.signVersion(a); err != nil {
		return api.Expert{}, err
	}
	if _, err := n.store.AddFile(ctx, file, meta); err != nil {
		return api.Expert{}, storeErr(err)
	}
	// An entry held already keeps its fields (Add fills only empty ones): an
	// unsigned one, say rebuilt after a crash, takes the publication now.
	if err := n.store.Update(c, func(m *store.Meta) {
		if len(m.Envelope) == 0 {
			m.Name, m.Publisher, m.Envelope = meta.Name, meta.Publisher, meta.Envelope
		}
		m.Pinned = true
	}); err != nil {
		return api.Expert{}, storeErr(err)
	}
	m, err := n.store.Get(c)
	if err != nil {
		return api.Expert{}, err
	}
	n.announce(m, true)
	n.handOff(m)
	e := n.expertOf(m)
	n.log.Info("published", slogutil.CID(c), slogutil.Name(m.Name), "version", e.Version, slogutil.Bytes(m.Size))
	return e, nil
}

// describe checks the container at file and returns the index entry of
// its publication by this node under name, unsigned, with the metadata to
// sign: read from the container.
func (n *Node) describe(file, name string) (store.Meta, gossip.Announcement, error) {
	h, err := checkContainer(file)
	if err != nil {
		return store.Meta{}, gossip.Announcement{}, fmt.Errorf("%w: %s: %v", api.ErrBadRequest, file, err)
	}
	st, err := os.Stat(file)
	if err != nil {
		return store.Meta{}, gossip.Announcement{}, err
	}
	c, err := unixfs.FileCID(file)
	if err != nil {
		return store.Meta{}, gossip.Announcement{}, err
	}
	m := store.MetaFromHeader(h)
	m.CID, m.Size, m.Name, m.Publisher, m.Pinned = c.String(), st.Size(), name, n.p2p.ID().String(), true
	a, err := announcementFromMeta(m, n.p2p.ID())
	if err != nil {
		return store.Meta{}, gossip.Announcement{}, err
	}
	if a.Merge, err = signedMerge(h); err != nil { // a merged expert's provenance
		return store.Meta{}, gossip.Announcement{}, fmt.Errorf("%w: %s: %v", api.ErrBadRequest, file, err)
	}
	return m, a, nil
}

// compressDir compresses an adapter directory into a temporary container
// under the data dir and returns its path.
func (n *Node) compressDir(r api.PublishRequest) (string, error) {
	opts, err := n.cfg.Compress.Options(r.Density, r.Alpha, r.Scope)
	if err != nil {
		return "", fmt.Errorf("%w: %v", api.ErrBadRequest, err)
	}
	src, err := compress.Load(r.Path, r.Base)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", api.ErrBadRequest, r.Path, err)
	}
	f, err := os.CreateTemp(n.cfg.DataDir(), ".publish-*.cpeft")
	if err != nil {
		return "", err
	}
	_, _, err = compress.Encode(f, src, opts...)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		if errors.Is(err, compress.ErrOption) {
			return "", fmt.Errorf("%w: %v", api.ErrBadRequest, err)
		}
		return "", err
	}
	return f.Name(), nil
}

// checkContainer reads a container through, verifying every checksum,
// and returns its header.
func checkContainer(path string) (*compress.Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return compress.Verify(f)
}

// announce gossips, in the background, that this node serves m: the whole
// expert (then it also provides it on the DHT) or, while it fetches m, the
// leaves it holds so far (the fetch protocol offers a partial holder's
// leaves; the DHT record waits for the whole expert).
func (n *Node) announce(m store.Meta, whole bool) {
	a, err := announcementFromMeta(m, n.p2p.ID())
	if err != nil {
		return
	}
	// A version of a line this node knows a newer version of goes on the
	// DHT only: the swarm ignores it on the topic (see withoutSuperseded).
	gossiped := !n.superseded(m)
	n.life.Go(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if gossiped {
			if err := n.gossip.Announce(ctx, a); err != nil {
				n.log.Warn("announce failed", slogutil.CID(a.CID), slogutil.Err(err))
			}
		}
		if whole {
			n.provide(ctx, a.CID)
		}
	})
}

// Materialize implements api.Backend: it writes a stored expert as a PEFT
// directory at r.Dir, an absolute path outside the directories the node
// manages (symbolic links resolved), empty or missing unless r.Overwrite.
// The container's declared output is checked against
// store.max_output_size and the free space first; a failed write leaves
// no directory the node created.
func (n *Node) Materialize(ctx context.Context, s string, r api.MaterializeRequest) (api.Materialized, error) {
	c, err := parseCID(s)
	if err != nil {
		return api.Materialized{}, err
	}
	if err := n.checkMaterializeDir(r.Dir); err != nil {
		return api.Materialized{}, err
	}
	rc, err := n.store.Open(ctx, c)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return api.Materialized{}, fmt.Errorf("expert %s is not stored here (fetch it first): %w", c, api.ErrNotFound)
		}
		return api.Materialized{}, err
	}
	defer rc.Close()
	_, err = compress.Expand(rc, r.Dir, compress.ExpandOptions{DType: r.DType, Overwrite: r.Overwrite, MaxOutput: n.cfg.Store.OutputLimit()})
	switch {
	case err == nil:
		return api.Materialized{CID: c.String(), Dir: r.Dir}, nil
	case errors.Is(err, compress.ErrOption) || errors.Is(err, compress.ErrBase):
		return api.Materialized{}, fmt.Errorf("%w: %v", api.ErrBadRequest, err)
	case errors.Is(err, compress.ErrNotEmpty):
		return api.Materialized{}, fmt.Errorf("%w: %v (\"overwrite\": true replaces the adapter in it)", api.ErrConflict, err)
	case errors.Is(err, compress.ErrOutputLimit):
		return api.Materialized{}, fmt.Errorf("%w: expert %s: %v (store.max_output_size)", api.ErrConflict, c, err)
	case errors.Is(err, compress.ErrNoSpace):
		return api.Materialized{}, fmt.Errorf("%w: expert %s: %v", api.ErrUnavailable, c, err)
	}
	return api.Materialized{}, err
}

// checkMaterializeDir refuses a materialize target that is not absolute or
// lies inside the adapters dir or the store, also through a symbolic link
// (the deepest existing ancestor of dir is resolved).
func (n *Node) checkMaterializeDir(dir string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("%w: dir %q must be an absolute path", api.ErrBadRequest, dir)
	}
	real, err := resolveExisting(dir)
	if err != nil {
		return fmt.Errorf("%w: dir %q: %v", api.ErrBadRequest, dir, err)
	}
	for _, root := range []string{n.handoff.Dir(), filepath.Join(n.cfg.DataDir(), StoreDir)} {
		if root == "" {
			continue
		}
		if rr, err := resolveExisting(root); err == nil {
			root = rr
		}
		if rel, err := filepath.Rel(root, real); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return fmt.Errorf("%w: dir %q is inside %s, which expertd manages", api.ErrBadRequest, dir, root)
		}
	}
	return nil
}

// resolveExisting resolves the symbolic links of the deepest existing
// ancestor of the absolute path p and appends the rest of p to it.
func resolveExisting(p string) (string, error) {
	p = filepath.Clean(p)
	rest := ""
	for {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(real, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(p, rest), nil
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

// Pin implements api.Backend.
func (n *Node) Pin(s string, pinned bool) error {
	c, err := parseCID(s)
	if err != nil {
		return err
	}
	return storeErr(n.store.Pin(c, pinned))
}

// Remove implements api.Backend: it also takes the expert away from the
// inference server.
func (n *Node) Remove(s string) error {
	c, err := parseCID(s)
	if err != nil {
		return err
	}
	m, err := n.store.Get(c)
	if err != nil {
		return storeErr(err)
	}
	if n.handoffOn() {
		if err := n.handoff.Remove(context.Background(), m.CID, m.Name); err != nil {
			n.log.Warn("remove adapter", slogutil.CID(m.CID), slogutil.Err(err))
		}
	}
	return storeErr(n.store.Remove(c))
}

// storeErr gives a store error its API kind (its HTTP status). The kind
// stands in for the store's own word for it ("store: not found: expert X"
// becomes "not found: expert X"), so the message says it once.
func storeErr(err error) error {
	var kind error
	switch {
	case errors.Is(err, store.ErrNotFound):
		kind = api.ErrNotFound
	case errors.Is(err, store.ErrQuota):
		kind = api.ErrConflict
	case errors.Is(err, store.ErrTooLarge):
		kind = api.ErrBadRequest
	default:
		return err
	}
	msg := strings.TrimPrefix(err.Error(), "store: ")
	msg = strings.TrimPrefix(msg, kind.Error()+": ")
	return &kindError{msg: kind.Error() + ": " + msg, errs: []error{kind, err}}
}

// kindError is an error with its own message wrapping an API kind and the
// error it stands for.
type kindError struct {
	msg  string
	errs []error
}

func (e *kindError) Error() string   { return e.msg }
func (e *kindError) Unwrap() []error { return e.errs }

// parseCID decodes a CID from a request; a bad one is a bad request.
func parseCID(s string) (cid.Cid, error) {
	c, err := api.ParseCID(s)
	if err != nil {
		return cid.Undef, fmt.Errorf("%w: %w", api.ErrBadRequest, err)
	}
	return c, nil
}
