// Package retryafter reads how long a server asks a client to wait before
// trying again: Retry-After (RFC 9110 §10.2.3: delay-seconds or an
// HTTP-date), or Okta's X-Rate-Limit-Reset (epoch seconds).
package retryafter

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Max caps the wait: a longer one is more likely a skewed clock or a broken
// server than a real limit, and waiting it out would hold up containment.
// A server still limiting after Max says so again on the next try.
const Max = 10 * time.Minute

// Parse reads a Retry-After value relative to now. Empty, garbage, negative
// and past values are 0.
func Parse(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs > int64(Max/time.Second) {
			return Max
		}
		return clamp(time.Duration(secs) * time.Second)
	}
	if t, err := http.ParseTime(v); err == nil {
		return clamp(t.Sub(now))
	}
	return 0
}

// Header is the wait a response's headers ask for: Retry-After, else
// X-Rate-Limit-Reset. Dates are measured from the response's Date header
// (the server's own clock) when it has one, else from now; 0 when neither
// header says anything usable.
func Header(h http.Header, now time.Time) time.Duration {
	if d, err := http.ParseTime(h.Get("Date")); err == nil {
		now = d
	}
	if d := Parse(h.Get("Retry-After"), now); d > 0 {
		return d
	}
	reset, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-Rate-Limit-Reset")), 10, 64)
	if err != nil || reset <= now.Unix() {
		return 0
	}
	if reset-now.Unix() > int64(Max/time.Second) {
		return Max
	}
	return clamp(time.Unix(reset, 0).Sub(now))
}

func clamp(d time.Duration) time.Duration { return min(max(d, 0), Max) }
