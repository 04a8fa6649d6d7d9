// Package codec encrypts workflow payloads before they reach Temporal.
// Terminations carry personal data (names, emails, account ids); with this
// codec Temporal's database, its logs and anyone reading raw history see
// AES-256-GCM ciphertext, and authorised people read the payloads decrypted
// in the Web UI through the codec server (Handler).
//
// What is not a payload stays plaintext: workflow ids, search attributes
// (the server indexes them) and, unless FailureConverter is used, error
// messages and stack traces. Keep personal data out of those.
package codec

import (
	"errors"
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

// Metadata of an encrypted payload.
const (
	// Encoding marks an encrypted payload; the data is nonce ‖ ciphertext ‖ tag.
	Encoding = "binary/encrypted"
	// MetadataKeyID names the key that sealed the payload.
	MetadataKeyID = "encryption-key-id"
)

// ErrUnknownKey is returned when a payload names a key the keyring lacks.
var ErrUnknownKey = errors.New("codec: unknown encryption key id")

// ErrTampered is returned when a payload fails authentication: altered
// data or metadata, or the wrong key behind a known id.
var ErrTampered = errors.New("codec: payload failed authentication (tampered, or sealed with another key)")

// Codec seals each payload (the whole proto-marshalled commonpb.Payload,
// metadata included) with AES-256-GCM under the keyring's primary key.
type Codec struct {
	keys *Keyring
}

// NewCodec returns the payload codec over k.
func NewCodec(k *Keyring) converter.PayloadCodec { return &Codec{keys: k} }

// DataConverter is Temporal's default data converter with payloads encrypted.
func DataConverter(k *Keyring) converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), NewCodec(k))
}

// FailureConverter moves error messages and stack traces into the failure's
// encoded attributes, so they are encrypted too: a connector error that
// names a person's email would otherwise sit in history in plaintext.
func FailureConverter(k *Keyring) converter.FailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter:          DataConverter(k),
		EncodeCommonAttributes: true,
	})
}

// additionalData binds the ciphertext to its metadata: changing the key id
// or the encoding breaks authentication.
func additionalData(keyID string) []byte {
	return []byte(Encoding + "\x00" + keyID)
}

// Encode seals every payload with the primary key.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	id := c.keys.primary
	aead := c.keys.aeads[id]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("codec: marshal payload %d: %w", i, err)
		}
		sealed := aead.Seal(nil, nil, plain, additionalData(id))
		clear(plain)
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(Encoding),
				MetadataKeyID:              []byte(id),
			},
			Data: sealed,
		}
	}
	return out, nil
}

// Decode opens encrypted payloads with the key each names and passes any
// other payload through unchanged (histories from before encryption).
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != Encoding {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		if id == "" {
			return nil, fmt.Errorf("codec: payload %d is encrypted but names no %s", i, MetadataKeyID)
		}
		aead, ok := c.keys.aeads[id]
		if !ok {
			return nil, fmt.Errorf("%w %q in payload %d (keyring holds: %v)", ErrUnknownKey, id, i, c.keys.IDs())
		}
		if len(p.GetData()) < aead.Overhead() {
			return nil, fmt.Errorf("%w: payload %d is %d bytes, shorter than nonce and tag", ErrTampered, i, len(p.GetData()))
		}
		plain, err := aead.Open(nil, nil, p.GetData(), additionalData(id))
		if err != nil {
			return nil, fmt.Errorf("%w: payload %d, key %q", ErrTampered, i, id)
		}
		var orig commonpb.Payload
		err = proto.Unmarshal(plain, &orig)
		clear(plain)
		if err != nil {
			return nil, fmt.Errorf("codec: payload %d decrypted but is not a payload: %w", i, err)
		}
		out[i] = &orig
	}
	return out, nil
}
