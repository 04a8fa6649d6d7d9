package evidence

import (
	commonpb "go.temporal.io/api/common/v1"
	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// Encrypted payloads (internal/codec). When the worker encrypts payloads,
// history.json is kept exactly as Temporal stored it: ciphertext. Reading
// it (the receipts, the report) and replaying it need the codec keys, so
// Archive, Build, Extract, Verify and Replay take WithConverters. The
// receipts.json and report.html are written decrypted: they are evidence
// for people. An auditor who replays history.json needs the key too.

// Option tunes how payloads in a history are decoded.
type Option func(*options)

type options struct {
	dc     converter.DataConverter
	fc     converter.FailureConverter
	custom bool // a data converter was given (it may decrypt)
}

// WithConverters decodes payloads with dc and replays with dc and fc (the
// converters of internal/codec when payloads are encrypted). Nil means
// Temporal's default.
func WithConverters(dc converter.DataConverter, fc converter.FailureConverter) Option {
	return func(o *options) { o.dc, o.fc, o.custom = dc, fc, dc != nil }
}

func optionsOf(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.dc == nil {
		o.dc = converter.GetDefaultDataConverter()
	}
	return o
}

// encryptedPayload names the key of an encrypted payload ("" when plain).
// It matches internal/codec's metadata without importing it.
func encryptedPayload(p *commonpb.Payload) (keyID string, ok bool) {
	if string(p.GetMetadata()[converter.MetadataEncoding]) != "binary/encrypted" {
		return "", false
	}
	return string(p.GetMetadata()["encryption-key-id"]), true
}

// failureText decodes a failure's message and its causes' (encrypted by the
// codec's failure converter) without touching the history event.
func failureText(dc converter.DataConverter, f *failurepb.Failure) *failurepb.Failure {
	if f == nil {
		return nil
	}
	g := proto.Clone(f).(*failurepb.Failure)
	for c := g; c != nil; c = c.GetCause() {
		converter.DecodeCommonFailureAttributes(dc, c)
	}
	return g
}
