package codec

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
)

// KeySize is the length of every key: AES-256.
const KeySize = 32

// keyIDPattern keeps key ids short and printable: they travel in every
// payload's metadata and in the GCM additional data.
var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Keyring holds the AES-256-GCM keys by id. New payloads are sealed with the
// primary key; a payload is opened with the key its metadata names, so old
// keys stay in the ring until no history needs them.
//
// The raw key bytes are not kept: only the ciphers built from them.
type Keyring struct {
	primary string
	aeads   map[string]cipher.AEAD
}

// NewKeyring builds a keyring from raw 32-byte keys.
func NewKeyring(keys map[string][]byte, primary string) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("codec: the keyring holds no key")
	}
	ids := sortedIDs(keys)
	k := &Keyring{primary: primary, aeads: make(map[string]cipher.AEAD, len(keys))}
	for i, id := range ids {
		if !keyIDPattern.MatchString(id) {
			return nil, fmt.Errorf("codec: key id %q: use 1-64 letters, digits, '.', '_' or '-'", id)
		}
		key := keys[id]
		if len(key) != KeySize {
			return nil, fmt.Errorf("codec: key %q is %d bytes; an AES-256 key is %d", id, len(key), KeySize)
		}
		for _, other := range ids[:i] {
			if bytes.Equal(keys[other], key) {
				return nil, fmt.Errorf("codec: keys %q and %q are the same key; a rotation needs a new one", other, id)
			}
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("codec: key %q: %w", id, err)
		}
		// A fresh random 96-bit nonce per payload, prepended to the ciphertext.
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, fmt.Errorf("codec: key %q: %w", id, err)
		}
		k.aeads[id] = aead
	}
	if _, ok := k.aeads[primary]; !ok {
		return nil, fmt.Errorf("codec: primary key id %q is not in the keyring (ids: %s)", primary, strings.Join(ids, ", "))
	}
	return k, nil
}

// LoadKeyring reads one key per file (key id → path). A key file holds the
// 32 key bytes in standard base64 (44 characters, as `openssl rand -base64 32`
// prints them); surrounding whitespace is ignored. Errors name the file and
// the key id, never the key.
func LoadKeyring(files map[string]string, primary string) (*Keyring, error) {
	if len(files) == 0 {
		return nil, errors.New("codec: no key files")
	}
	keys := make(map[string][]byte, len(files))
	for _, id := range sortedIDs(files) {
		key, err := readKeyFile(files[id])
		if err != nil {
			return nil, fmt.Errorf("codec: key %q: %w", id, err)
		}
		keys[id] = key
	}
	k, err := NewKeyring(keys, primary)
	for _, key := range keys {
		clear(key)
	}
	return k, err
}

func readKeyFile(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("no key file named")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		// The *PathError names the file and the cause, not the content.
		return nil, err
	}
	defer clear(raw)
	text := strings.TrimSpace(string(raw))
	key, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		if isHexKey(text) {
			return nil, fmt.Errorf("key file %s holds hex; write the key as base64 (xxd -r -p %s | base64)", path, path)
		}
		return nil, fmt.Errorf("key file %s is not standard base64 (make one with: openssl rand -base64 32 > %s)", path, path)
	}
	if len(key) != KeySize {
		size := len(key)
		clear(key)
		if isHexKey(text) {
			return nil, fmt.Errorf("key file %s holds hex; write the key as base64 (xxd -r -p %s | base64)", path, path)
		}
		return nil, fmt.Errorf("key file %s holds %d bytes after base64 decoding; an AES-256 key is %d", path, size, KeySize)
	}
	return key, nil
}

// isHexKey reports whether s looks like a 32-byte key written in hex, the
// other common way to write a key, so the error can say what to do.
func isHexKey(s string) bool {
	if len(s) != 2*KeySize {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// Primary is the id of the key new payloads are sealed with.
func (k *Keyring) Primary() string { return k.primary }

// IDs lists the key ids, sorted.
func (k *Keyring) IDs() []string { return sortedIDs(k.aeads) }

// String names the keys, never their bytes.
func (k *Keyring) String() string {
	return fmt.Sprintf("codec.Keyring{primary: %s, ids: [%s]}", k.primary, strings.Join(k.IDs(), " "))
}

// GoString keeps %#v from reaching the ciphers' internals.
func (k *Keyring) GoString() string { return k.String() }

func sortedIDs[V any](m map[string]V) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
