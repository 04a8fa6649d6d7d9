package siem_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/metrics"
	"github.com/offboard/offboard/internal/siem"
	"github.com/offboard/offboard/sandbox/hec"
)

func events(n int) []siem.Event {
	var out []siem.Event
	for i := range n {
		r := control.Receipt{ControlID: fmt.Sprintf("okta/suspend-%d", i), System: "okta", Action: "suspend", Phase: control.Containment, Target: "00u1", Outcome: control.Observed}
		out = append(out, siem.ControlEvent(siem.Run{WorkflowID: "deprovision-E1", RunID: "run-1", ActivityID: strconv.Itoa(i), Attempt: 1}, "apply", r, nil, time.Unix(1700000000, 0)))
	}
	return out
}

// droppedMetric reads the emitter's counter from the worker's registry.
func droppedMetric(t *testing.T, sink, reason string) float64 {
	t.Helper()
	mfs, err := metrics.DefaultRegistry().Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != siem.NameDropped {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["sink"] == sink && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestHECGetsEveryEventOnceWithItsToken(t *testing.T) {
	sim := hec.New("tok")
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	em := siem.New(siem.Options{}, &siem.HEC{URL: srv.URL, Token: "tok", HTTP: srv.Client()})
	evs := events(250)
	for _, ev := range evs {
		em.Emit(ev)
	}
	require.NoError(t, em.Close(t.Context()))
	assert.Equal(t, int64(0), em.Dropped())
	counts := sim.Counts()
	require.Len(t, counts, 250)
	for _, ev := range evs {
		assert.Equal(t, 1, counts[ev.Metadata.UID], ev.Metadata.UID)
	}
	var got siem.Event
	require.NoError(t, json.Unmarshal(sim.Events()[evs[0].Metadata.UID], &got))
	assert.Equal(t, 3001, got.ClassUID)
	assert.Equal(t, 300105, got.TypeUID) // Account Change: Disable
	assert.Equal(t, "deprovision-E1", got.Unmapped.WorkflowID)
	assert.Equal(t, "run-1", got.Unmapped.RunID)
	assert.Len(t, got.Unmapped.ReceiptDigest, 64)
}

func TestHECWrongTokenIsDroppedAndCounted(t *testing.T) {
	sim := hec.New("right")
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	before := droppedMetric(t, "hec", "undeliverable")
	em := siem.New(siem.Options{Retries: 3}, &siem.HEC{URL: srv.URL, Token: "wrong", HTTP: srv.Client()})
	em.Emit(events(1)[0])
	require.NoError(t, em.Close(t.Context()))
	assert.Equal(t, int64(1), em.Dropped(), "a 403 is permanent: not retried, dropped and counted")
	assert.Equal(t, before+1, droppedMetric(t, "hec", "undeliverable"))
	assert.Zero(t, sim.Total())
}

func TestSameFactsSameID(t *testing.T) {
	a, b := events(1)[0], events(1)[0]
	assert.Equal(t, a.Metadata.UID, b.Metadata.UID)
	run := siem.Run{WorkflowID: "w", RunID: "r", ActivityID: "5", Attempt: 2}
	r := control.Receipt{ControlID: "okta/suspend", Outcome: control.Observed}
	ok2 := siem.ControlEvent(run, "apply", r, nil, time.Now())
	run.Attempt = 3
	ok3 := siem.ControlEvent(run, "apply", r, nil, time.Now())
	assert.Equal(t, ok2.Metadata.UID, ok3.Metadata.UID, "a retry proving the same outcome is the same event")
	fail3 := siem.ControlEvent(run, "apply", r, fmt.Errorf("boom"), time.Now())
	assert.NotEqual(t, ok3.Metadata.UID, fail3.Metadata.UID)
}

// A HEC that hangs never blocks Emit: the queue fills, the rest is dropped
// and counted, and what was queued arrives once the HEC answers.
func TestSlowHECNeverBlocksAndCountsOverflow(t *testing.T) {
	sim := hec.New("tok")
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
			<-release // the first request hangs until the test lets it go
		default:
		}
		sim.Handler().ServeHTTP(w, r)
	}))
	defer srv.Close()
	before := droppedMetric(t, "hec", "overflow")
	em := siem.New(siem.Options{Buffer: 4, MaxBatch: 1}, &siem.HEC{URL: srv.URL, Token: "tok", HTTP: srv.Client()})
	evs := events(8)
	em.Emit(evs[0])
	<-arrived // the sender holds event 0 in a request that hangs
	done := make(chan struct{})
	go func() {
		for _, ev := range evs[1:] {
			em.Emit(ev)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("Emit blocked behind a hanging HEC")
	}
	assert.Equal(t, int64(3), em.Dropped(), "4 fit in the buffer, 3 overflow")
	assert.Equal(t, before+3, droppedMetric(t, "hec", "overflow"))
	close(release)
	require.NoError(t, em.Close(t.Context()))
	assert.Equal(t, 5, sim.Total())
	assert.Equal(t, int64(3), em.Dropped())
}

func TestFileWritesJSONLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "siem.jsonl")
	em := siem.New(siem.Options{}, &siem.File{Path: path})
	evs := events(3)
	for _, ev := range evs {
		em.Emit(ev)
	}
	require.NoError(t, em.Close(t.Context()))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	require.Len(t, lines, 3)
	for i, l := range lines {
		var ev siem.Event
		require.NoError(t, json.Unmarshal([]byte(l), &ev))
		assert.Equal(t, evs[i].Metadata.UID, ev.Metadata.UID)
	}
	assert.Zero(t, em.Dropped())
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "collector"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// The collector reads RFC 5425 frames ("LEN SP MSG") of RFC 5424 messages.
func TestSyslogTLSOctetCountingFrames(t *testing.T) {
	cert, pool := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	require.NoError(t, err)
	defer ln.Close()
	msgs := make(chan string, 10)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			n, err := r.ReadString(' ')
			if err != nil {
				close(msgs)
				return
			}
			size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
			if err != nil {
				msgs <- "bad length " + n
				close(msgs)
				return
			}
			buf := make([]byte, size)
			if _, err := io.ReadFull(r, buf); err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf)
		}
	}()
	em := siem.New(siem.Options{}, &siem.Syslog{Address: ln.Addr().String(), TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, Hostname: "worker-1"})
	evs := events(3)
	evs[2].StatusID = siem.StatusFailure
	for _, ev := range evs {
		em.Emit(ev)
	}
	require.NoError(t, em.Close(t.Context()))
	var got []string
	for m := range msgs {
		got = append(got, m)
	}
	require.Len(t, got, 3)
	for i, m := range got {
		pri := "<109>1 " // facility 13 (log audit), notice
		if i == 2 {
			pri = "<108>1 " // warning
		}
		assert.True(t, strings.HasPrefix(m, pri+"2023-11-14T22:13:20.000Z worker-1 offboard - ocsf-3001 [offboard@32473 uid=\""+evs[i].Metadata.UID+"\"] {"), m)
		var ev siem.Event
		require.NoError(t, json.Unmarshal([]byte(m[strings.Index(m, "] ")+2:]), &ev))
		assert.Equal(t, evs[i].Metadata.UID, ev.Metadata.UID)
	}
	assert.Zero(t, em.Dropped())
}
