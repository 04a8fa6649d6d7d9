package evidence

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// Keys are PEM files:
//   - the private key: "PRIVATE KEY", PKCS #8 (what `openssl genpkey -algorithm ed25519` writes);
//   - the public key: "PUBLIC KEY", PKIX (what `openssl pkey -pubout` writes).
//
// The key id is "ed25519:" and the first 8 bytes of SHA-256 of the raw
// 32-byte public key, in hex.

// KeyID names a public key.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ed25519:" + hex.EncodeToString(sum[:8])
}

// GenerateKey makes a new signing key and writes it to path (mode 0600). It
// refuses to overwrite an existing file.
func GenerateKey(path string) (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("evidence: key file: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		_ = f.Close()
		return nil, err
	}
	return priv, f.Close()
}

// LoadPrivateKey reads a PEM private key file.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("evidence: key file: %w", err)
	}
	return ParsePrivateKey(b)
}

// ParsePrivateKey decodes a PEM "PRIVATE KEY" (PKCS #8) holding an Ed25519 key.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("evidence: signing key is not a PEM \"PRIVATE KEY\" block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("evidence: signing key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("evidence: signing key is %T, not Ed25519", k)
	}
	return priv, nil
}

// MarshalPublicKey writes the public key as PEM "PUBLIC KEY".
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// LoadPublicKey reads a PEM public key file; a private key file is accepted
// too and its public half used.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("evidence: public key file: %w", err)
	}
	return ParsePublicKey(b)
}

// ParsePublicKey decodes a PEM "PUBLIC KEY" (or "PRIVATE KEY") holding an Ed25519 key.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("evidence: public key is not PEM")
	}
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("evidence: public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("evidence: public key is %T, not Ed25519", k)
		}
		return pub, nil
	case "PRIVATE KEY":
		priv, err := ParsePrivateKey(b)
		if err != nil {
			return nil, err
		}
		return priv.Public().(ed25519.PublicKey), nil
	}
	return nil, fmt.Errorf("evidence: PEM block %q is not a public key", block.Type)
}
