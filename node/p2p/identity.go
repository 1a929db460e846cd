package p2p

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/expertd/expertd/internal/atomicfile"
	"github.com/libp2p/go-libp2p/core/crypto"
	crypto_pb "github.com/libp2p/go-libp2p/core/crypto/pb"
)

// IdentityFile is the identity key's file name in the data directory.
const IdentityFile = "identity.key"

// Identity errors; LoadIdentity wraps them with the file's path.
var (
	// ErrIdentityPermissions: the key file is readable or writable by group or others.
	ErrIdentityPermissions = errors.New("identity key file is accessible to group or others")
	// ErrIdentityCorrupt: the key file does not hold a libp2p ed25519 private key.
	ErrIdentityCorrupt = errors.New("identity key file is corrupt")
)

// LoadIdentity returns the node's private key stored at path, creating an
// ed25519 key there (and the directory, mode 0700) if the file is missing.
//
// The file holds the key in libp2p's protobuf encoding and is written with
// mode 0600 through a temporary file that is linked into place, so a crash
// never leaves a partial key and two processes starting at once agree on one
// key. A key file that group or others may access is refused rather than
// fixed, as ssh does: the key may already have leaked, so the operator should
// decide (chmod 600 it, or delete it to make a new identity). A file that
// does not decode to an ed25519 key is refused with ErrIdentityCorrupt; it
// is never overwritten.
func LoadIdentity(path string) (crypto.PrivKey, error) {
	key, err := readIdentity(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	key, _, err = crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: generate: %w", err)
	}
	data, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if err := atomicfile.Create(path, data, 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readIdentity(path) // another process made one first: use it
		}
		return nil, fmt.Errorf("identity: %w", err) // err names path
	}
	return key, nil
}

// maxKeyFile bounds what readIdentity reads; an ed25519 key file is 68 bytes.
const maxKeyFile = 4096

func readIdentity(path string) (crypto.PrivKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity %s: mode %04o: %w; run chmod 600 on it if it is still secret, or delete it to make a new identity",
			path, st.Mode().Perm(), ErrIdentityPermissions)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("identity %s: not a regular file: %w", path, ErrIdentityCorrupt)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("identity %s: larger than any key: %w", path, ErrIdentityCorrupt)
	}
	key, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w: %w", path, ErrIdentityCorrupt, err)
	}
	if key.Type() != crypto_pb.KeyType_Ed25519 {
		return nil, fmt.Errorf("identity %s: a %s key, want Ed25519: %w", path, key.Type(), ErrIdentityCorrupt)
	}
	return key, nil
}
