package p2p

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
)

func TestIdentityPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", IdentityFile)
	k1, err := LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if k1.Type() != crypto.Ed25519 {
		t.Fatalf("key type %v", k1.Type())
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o, want 0600", st.Mode().Perm())
	}
	k2, err := LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equals(k2) {
		t.Fatal("second load returned a different key")
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Fatalf("files beside the identity: %v", ents)
	}
}

func TestIdentityRefusesOpenPermissions(t *testing.T) {
	path := filepath.Join(t.TempDir(), IdentityFile)
	if _, err := LoadIdentity(path); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o620, 0o610, 0o604, 0o602} { // group or others, any bit
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadIdentity(path)
		if !errors.Is(err, ErrIdentityPermissions) {
			t.Fatalf("mode %04o: err = %v, want ErrIdentityPermissions", mode, err)
		}
		st, _ := os.Stat(path)
		if st.Mode().Perm() != mode {
			t.Fatalf("mode %04o: the file's mode was changed", mode)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil { // read-only for its owner is fine
		t.Fatal(err)
	}
	if _, err := LoadIdentity(path); err != nil {
		t.Fatalf("mode 0400: %v", err)
	}
}

func TestIdentityRejectsCorruptFile(t *testing.T) {
	dir := t.TempDir()
	rsa, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := crypto.MarshalPrivateKey(rsa)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"empty":     {},
		"garbage":   []byte("not a key at all"),
		"secp256k1": other,
		"huge":      make([]byte, 10000),
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadIdentity(path); !errors.Is(err, ErrIdentityCorrupt) {
			t.Errorf("%s: err = %v, want ErrIdentityCorrupt", name, err)
		}
		if got, _ := os.ReadFile(path); len(got) != len(data) {
			t.Errorf("%s: the file was overwritten", name)
		}
	}
}

// Processes starting at once agree on one key.
func TestIdentityConcurrentCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), IdentityFile)
	keys := make([]crypto.PrivKey, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := LoadIdentity(path)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if k == nil || !k.Equals(keys[0]) {
			t.Fatal("concurrent loads returned different keys")
		}
	}
}
