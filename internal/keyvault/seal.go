package keyvault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/slipway-dev/slipway/internal/atomicfile"
)

// Sealer encrypts secret values at rest with AES-256-GCM under a key kept
// in the data directory (mode 0600), so the management plane's store, its
// backups and its logs never hold a value in the clear.
type Sealer struct{ aead cipher.AEAD }

// OpenSealer loads the key in file, making it on first use.
func OpenSealer(file string) (*Sealer, error) {
	key, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			return nil, err
		}
		err = atomicfile.Write(file, key, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("key vault sealing key: %w", err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("key vault sealing key %s: %d bytes, want 32", file, len(key))
	}
	return NewSealer(key)
}

// NewSealer seals with a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts a value; aad binds it to where it is stored (vault,
// secret and version), so a sealed value copied elsewhere does not open.
func (s *Sealer) Seal(value, aad string) string {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	return base64.StdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(value), []byte(aad)))
}

// Open decrypts a sealed value.
func (s *Sealer) Open(sealed, aad string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", errors.New("sealed secret value is malformed")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, b[:n], b[n:], []byte(aad))
	if err != nil {
		return "", errors.New("sealed secret value does not open with this data directory's key")
	}
	return string(plain), nil
}
