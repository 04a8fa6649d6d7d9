package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
)

// SIEM lists where every control outcome, exception, SLA breach and drift
// finding is sent as an OCSF event (internal/siem). No sink: nothing is sent.
type SIEM struct {
	HEC    *SIEMHEC    `yaml:"hec"`
	Syslog *SIEMSyslog `yaml:"syslog"`
	File   *SIEMFile   `yaml:"file"`
	SSF    *SIEMSSF    `yaml:"ssf"` // Shared Signals receivers (ssf.go)
	// Buffer is how many events wait per sink before new ones are dropped
	// (and counted): an activity never waits for the SIEM. 0: 10000.
	Buffer int `yaml:"buffer"`
	// Retries per batch before it is dropped (and counted). 0: 5.
	Retries int `yaml:"retries"`
}

// SIEMHEC is a Splunk HTTP Event Collector.
type SIEMHEC struct {
	URL        string `yaml:"url"` // https://splunk.example:8088 (the path /services/collector/event is added)
	Token      Secret `yaml:"token"`
	Index      string `yaml:"index"`
	SourceType string `yaml:"sourcetype"`
}

// SIEMSyslog is syslog over TLS (RFC 5425).
type SIEMSyslog struct {
	Address    string `yaml:"address"` // host:6514
	CAFile     string `yaml:"caFile"`
	ServerName string `yaml:"serverName"`
	CertFile   string `yaml:"certFile"` // client certificate, if the collector asks for one
	KeyFile    string `yaml:"keyFile"`
}

// SIEMFile appends one JSON event per line.
type SIEMFile struct {
	Path string `yaml:"path"`
}

// Enabled reports whether any sink is configured.
func (s SIEM) Enabled() bool {
	return s.HEC != nil || s.Syslog != nil || s.File != nil || s.SSF != nil && len(s.SSF.Receivers) > 0
}

// Check validates the section; it reads no secret.
func (s SIEM) Check() error {
	if s.Buffer < 0 || s.Retries < 0 {
		return errors.New("siem: buffer and retries may not be negative")
	}
	if h := s.HEC; h != nil {
		u, err := url.Parse(h.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("siem.hec.url %q must be an http(s) URL", h.URL)
		}
		if !h.Token.IsSet() {
			return errors.New("siem.hec.token is required ({env: NAME} or {file: PATH})")
		}
		if err := h.Token.check(); err != nil {
			return fmt.Errorf("siem.hec.token: %w", err)
		}
	}
	if sl := s.Syslog; sl != nil {
		if _, _, err := net.SplitHostPort(sl.Address); err != nil {
			return fmt.Errorf("siem.syslog.address %q must be host:port", sl.Address)
		}
		if (sl.CertFile == "") != (sl.KeyFile == "") {
			return errors.New("siem.syslog: certFile and keyFile go together")
		}
	}
	if f := s.File; f != nil && f.Path == "" {
		return errors.New("siem.file.path is required")
	}
	return s.SSF.check()
}
