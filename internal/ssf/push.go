package ssf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// ErrRejected marks a SET the receiver refused (RFC 8935 400 with an error,
// 401, 403): sending the same bytes again cannot help.
var ErrRejected = errors.New("rejected by the receiver")

// Push delivers one signed SET to a receiver's push endpoint (RFC 8935):
// 202 is accepted; token, when set, is sent as a bearer token.
func Push(ctx context.Context, hc *http.Client, url, token, set string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(set))
	if err != nil {
		return fmt.Errorf("ssf: push: %w: %w", ErrRejected, err)
	}
	req.Header.Set("Content-Type", MediaType)
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("ssf: push to %s: %w", url, err) // the URL holds no secret; the token is a header
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("ssf: push to %s: HTTP %d", url, resp.StatusCode)
	}
	var e Error
	if json.Unmarshal(body, &e) == nil && e.Code != "" {
		return fmt.Errorf("ssf: push to %s: %w: HTTP %d %s: %s", url, ErrRejected, resp.StatusCode, e.Code, e.Description)
	}
	return fmt.Errorf("ssf: push to %s: %w: HTTP %d", url, ErrRejected, resp.StatusCode)
}
