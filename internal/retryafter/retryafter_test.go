package retryafter

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestParse(t *testing.T) {
	tests := map[string]time.Duration{
		"":                        0,
		"   ":                     0,
		"12":                      12 * time.Second,
		" 7 ":                     7 * time.Second,
		"0":                       0,
		"-3":                      0,
		"1.5":                     0,
		"soon":                    0,
		"99999999999999":          Max,
		"3600":                    Max,
		"600":                     10 * time.Minute,
		"99999999999999999999999": 0, // overflows int64: garbage
		now.Add(time.Minute).Format(http.TimeFormat):    time.Minute,
		now.Add(-time.Minute).Format(http.TimeFormat):   0,
		now.Add(48 * time.Hour).Format(http.TimeFormat): Max,
		"Friday, 02-Jan-26 03:05:05 GMT":                time.Minute, // RFC 850, which HTTP-date allows too
	}
	for in, want := range tests {
		assert.Equal(t, want, Parse(in, now), "%q", in)
	}
}

func TestHeader(t *testing.T) {
	serverNow := now.Add(-time.Hour) // the client's clock is an hour ahead of the server's
	tests := []struct {
		name string
		h    http.Header
		want time.Duration
	}{
		{"nothing", http.Header{}, 0},
		{"delay seconds", http.Header{"Retry-After": {"30"}}, 30 * time.Second},
		{"date from the server's clock", http.Header{"Retry-After": {serverNow.Add(20 * time.Second).Format(http.TimeFormat)}, "Date": {serverNow.Format(http.TimeFormat)}}, 20 * time.Second},
		{"date from now without Date", http.Header{"Retry-After": {now.Add(20 * time.Second).Format(http.TimeFormat)}}, 20 * time.Second},
		{"okta reset", http.Header{"X-Rate-Limit-Reset": {strconv.FormatInt(serverNow.Unix()+42, 10)}, "Date": {serverNow.Format(http.TimeFormat)}}, 42 * time.Second},
		{"okta reset passed", http.Header{"X-Rate-Limit-Reset": {strconv.FormatInt(now.Unix()-5, 10)}}, 0},
		{"okta reset far away", http.Header{"X-Rate-Limit-Reset": {strconv.FormatInt(now.Unix()+86400, 10)}}, Max},
		{"okta reset garbage", http.Header{"X-Rate-Limit-Reset": {"later"}}, 0},
		{"retry-after wins", http.Header{"Retry-After": {"3"}, "X-Rate-Limit-Reset": {strconv.FormatInt(now.Unix()+60, 10)}}, 3 * time.Second},
		{"garbage retry-after falls back to reset", http.Header{"Retry-After": {"soon"}, "X-Rate-Limit-Reset": {strconv.FormatInt(now.Unix()+60, 10)}}, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { assert.Equal(t, tt.want, Header(tt.h, now)) })
	}
}
