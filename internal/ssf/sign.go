package ssf

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// Algorithms are the only JWS algorithms signed or accepted: asymmetric,
// so a receiver's copy of the keys cannot forge, and never "none".
var Algorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256}

// Key is a transmitter's signing key.
type Key struct {
	signer crypto.Signer
	alg    jose.SignatureAlgorithm
	kid    string
}

// ParseKey reads a signing key: PEM (PKCS#8, SEC 1 EC or PKCS#1 RSA), or
// the base64 of a 32-byte P-256 private scalar. An EC key must be P-256
// (ES256); an RSA key at least 2048 bits (RS256).
func ParseKey(text string) (*Key, error) {
	var signer crypto.Signer
	if block, _ := pem.Decode([]byte(text)); block != nil {
		var parsed any
		var err error
		switch block.Type {
		case "EC PRIVATE KEY":
			parsed, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			parsed, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		}
		if err != nil {
			return nil, fmt.Errorf("ssf: signing key: %w", err)
		}
		s, ok := parsed.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("ssf: signing key: %T cannot sign", parsed)
		}
		signer = s
	} else {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
		if err != nil || len(raw) != 32 {
			return nil, errors.New("ssf: signing key is neither PEM nor the base64 of a 32-byte P-256 private key")
		}
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
		if err != nil {
			return nil, fmt.Errorf("ssf: signing key: %w", err)
		}
		signer = k
	}
	return NewKey(signer)
}

// NewKey wraps a P-256 ECDSA or RSA (2048 bits or more) private key.
func NewKey(s crypto.Signer) (*Key, error) {
	k := &Key{signer: s}
	switch pub := s.Public().(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ssf: signing key: EC curve %s; ES256 needs P-256", pub.Curve.Params().Name)
		}
		k.alg = jose.ES256
	case *rsa.PublicKey:
		if pub.N.BitLen() < 2048 {
			return nil, fmt.Errorf("ssf: signing key: RSA %d bits; RS256 needs 2048 or more", pub.N.BitLen())
		}
		k.alg = jose.RS256
	default:
		return nil, fmt.Errorf("ssf: signing key: %T is not ECDSA P-256 or RSA", pub)
	}
	// The key id is the RFC 7638 thumbprint: it changes with the key, never by hand.
	jwk := jose.JSONWebKey{Key: s.Public()}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("ssf: signing key: %w", err)
	}
	k.kid = base64.RawURLEncoding.EncodeToString(tp)
	return k, nil
}

// Algorithm is RS256 or ES256.
func (k *Key) Algorithm() string { return string(k.alg) }

// KeyID is the key's "kid".
func (k *Key) KeyID() string { return k.kid }

// JWKS is the public half, as published at jwks_uri.
func (k *Key) JWKS() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.signer.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}}}
}

// Sign makes the compact JWS of a SET, typed secevent+jwt.
func (k *Key) Sign(set SET) (string, error) {
	payload, err := json.Marshal(set)
	if err != nil {
		return "", fmt.Errorf("ssf: sign: %w", err)
	}
	opts := (&jose.SignerOptions{}).WithType(TypeHeader).WithHeader(jose.HeaderKey("kid"), k.kid)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.signer}, opts)
	if err != nil {
		return "", fmt.Errorf("ssf: sign: %w", err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("ssf: sign: %w", err)
	}
	return obj.CompactSerialize()
}
