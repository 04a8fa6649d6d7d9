package siem

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/offboard/offboard/internal/config"
)

// HEC posts to Splunk's HTTP Event Collector.
type HEC struct {
	URL        string // base URL; /services/collector/event is added
	Token      string
	Index      string
	SourceType string
	HTTP       *http.Client
}

func (h *HEC) Name() string { return "hec" }
func (h *HEC) Close() error { return nil }

// Send posts the batch as HEC's concatenated JSON objects.
func (h *HEC) Send(ctx context.Context, batch []Event) error {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	st := h.SourceType
	if st == "" {
		st = "ocsf:account_change"
	}
	for _, ev := range batch {
		_ = enc.Encode(map[string]any{"time": float64(ev.Time) / 1000, "source": "offboard", "sourcetype": st, "index": h.Index, "event": ev})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(h.URL, "/")+"/services/collector/event", &body)
	if err != nil {
		return fmt.Errorf("siem: hec: %w: %w", ErrPermanent, err)
	}
	req.Header.Set("Authorization", "Splunk "+h.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("siem: hec: %w", err) // the URL holds no secret; the token is in a header
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("siem: hec: HTTP %d: %s", resp.StatusCode, reply)
	}
	return fmt.Errorf("siem: hec: %w: HTTP %d: %s", ErrPermanent, resp.StatusCode, reply)
}

// Syslog writes RFC 5424 messages over TLS with RFC 5425's octet-counting
// framing ("LEN SP MSG"); it reconnects after an error.
type Syslog struct {
	Address  string
	TLS      *tls.Config
	Hostname string
	conn     net.Conn
}

func (s *Syslog) Name() string { return "syslog" }

func (s *Syslog) Close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// Send writes each event as one framed message.
func (s *Syslog) Send(ctx context.Context, batch []Event) error {
	if s.conn == nil {
		d := tls.Dialer{Config: s.TLS, NetDialer: &net.Dialer{Timeout: 10 * time.Second}}
		c, err := d.DialContext(ctx, "tcp", s.Address)
		if err != nil {
			return fmt.Errorf("siem: syslog: dial %s: %w", s.Address, err)
		}
		s.conn = c
	}
	var buf bytes.Buffer
	for _, ev := range batch {
		msg := Frame5424(ev, s.Hostname)
		fmt.Fprintf(&buf, "%d %s", len(msg), msg)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = s.conn.SetWriteDeadline(dl)
	}
	if _, err := s.conn.Write(buf.Bytes()); err != nil {
		_ = s.Close()
		return fmt.Errorf("siem: syslog: write: %w", err)
	}
	return nil
}

// Frame5424 is one RFC 5424 message: facility 13 (log audit), severity
// notice for a success and warning otherwise; MSGID is the OCSF class and
// the event id is the structured data's id, the JSON event the message.
func Frame5424(ev Event, hostname string) []byte {
	sev := 5
	if ev.StatusID != StatusSuccess {
		sev = 4
	}
	if hostname == "" {
		hostname = "-"
	}
	body, _ := json.Marshal(ev)
	ts := time.UnixMilli(ev.Time).UTC().Format("2006-01-02T15:04:05.000Z")
	return fmt.Appendf(nil, "<%d>1 %s %s offboard - ocsf-%d [offboard@32473 uid=\"%s\"] %s", 13*8+sev, ts, hostname, ev.ClassUID, ev.Metadata.UID, body)
}

// File appends one JSON event per line.
type File struct {
	Path string
	mu   sync.Mutex
	f    *os.File
}

func (f *File) Name() string { return "file" }

func (f *File) Send(_ context.Context, batch []Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		fh, err := os.OpenFile(f.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("siem: file: %w", err)
		}
		f.f = fh
	}
	w := bufio.NewWriter(f.f)
	enc := json.NewEncoder(w)
	for _, ev := range batch {
		if err := enc.Encode(ev); err != nil {
			return fmt.Errorf("siem: file: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("siem: file: %w", err)
	}
	return nil
}

func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		return nil
	}
	err := f.f.Close()
	f.f = nil
	return err
}

// FromConfig builds the emitter of the configuration's siem section, reading
// its secrets once; nil when no sink is configured.
func FromConfig(c config.SIEM) (*Emitter, error) {
	if !c.Enabled() {
		return nil, nil
	}
	var sinks []Sink
	if h := c.HEC; h != nil {
		tok, err := h.Token.Value()
		if err != nil {
			return nil, fmt.Errorf("siem: hec token (%s): %w", h.Token, err)
		}
		sinks = append(sinks, &HEC{URL: h.URL, Token: tok, Index: h.Index, SourceType: h.SourceType, HTTP: &http.Client{Timeout: 10 * time.Second}})
	}
	if sl := c.Syslog; sl != nil {
		tc := &tls.Config{ServerName: sl.ServerName, MinVersion: tls.VersionTLS12}
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(sl.Address)
		}
		if sl.CAFile != "" {
			pem, err := os.ReadFile(sl.CAFile)
			if err != nil {
				return nil, fmt.Errorf("siem: syslog caFile: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("siem: syslog caFile %s holds no PEM certificate", sl.CAFile)
			}
		}
		if sl.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(sl.CertFile, sl.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("siem: syslog client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		host, _ := os.Hostname()
		sinks = append(sinks, &Syslog{Address: sl.Address, TLS: tc, Hostname: host})
	}
	if f := c.File; f != nil {
		sinks = append(sinks, &File{Path: f.Path})
	}
	ssfs, err := ssfSinks(c.SSF)
	if err != nil {
		return nil, err
	}
	sinks = append(sinks, ssfs...)
	return New(Options{Buffer: c.Buffer, Retries: c.Retries}, sinks...), nil
}
