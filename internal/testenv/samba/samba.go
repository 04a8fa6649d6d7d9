// Package samba starts a real Samba Active Directory domain controller for
// tests, from the snapshot scripts/samba/ keeps (provisioning it the first
// time), listening on 127.0.0.1 only.
//
// The DC needs root (it binds 636) and Debian's samba packages; a test that
// asks for it on a machine without them fails, naming the setup to run.
package samba

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/offboard/offboard/sandbox/demo"
)

// Fixed by scripts/samba (env.sh and seed.py).
const (
	Realm         = "CORP.EXAMPLE.TEST"
	BaseDN        = "DC=corp,DC=example,DC=test"
	UsersDN       = "CN=Users," + BaseDN
	AdminPassword = "Offboard-Adm1n!"
	// UserPassword is every seeded demo person's password, so tests can
	// check whether a person can still bind.
	UserPassword = "Offboard-Us3r!"
	// Seeded is how many sandbox/demo people the DC holds.
	Seeded = 20
)

// Packages is what the setup script must apt-get install for this DC.
const Packages = "samba samba-ad-dc samba-ad-provision samba-dsdb-modules samba-vfs-modules winbind ldb-tools openssl"

// DC is a running domain controller.
type DC struct {
	URL      string // ldaps://127.0.0.1:636
	CAFile   string // the CA that signed the DC's certificate
	BindDN   string // the Administrator's DN
	BindUPN  string // Administrator@corp.example.test
	Password string // the Administrator's password
	BaseDN   string
	Dir      string // where the DC's files live
}

// UserDN is the DN the seed gives a demo person (CN "First Last" in CN=Users).
func UserDN(p demo.Person) string { return "CN=" + p.Name() + "," + UsersDN }

// GroupDN is the DN of a seeded demo group.
func GroupDN(name string) string { return "CN=" + name + "," + UsersDN }

// Start restores the DC from its snapshot, starts it, waits until LDAPS
// answers, and stops it when the test ends. Every Start gets a pristine
// directory. Only one DC runs on a machine at a time: a second Start (from
// another test binary) waits for the first to stop.
func Start(t testing.TB) *DC {
	t.Helper()
	script, err := findScript()
	if err != nil {
		t.Fatalf("samba: %v", err)
	}
	if _, err := exec.LookPath("samba"); err != nil {
		if _, err2 := os.Stat("/usr/sbin/samba"); err2 != nil {
			t.Fatalf("samba: Samba AD DC is not installed (%v). Run `scripts/setup.sh test` (as root), which does: "+
				"apt-get install -y --no-install-recommends %s", err, Packages)
		}
	}
	if os.Geteuid() != 0 {
		t.Fatalf("samba: the test DC must run as root (it provisions a domain and binds 127.0.0.1:636)")
	}
	dir := os.Getenv("OFFBOARD_SAMBA_DIR")
	if dir == "" {
		dir = "/tmp/offboard-samba"
	}
	people := filepath.Join(t.TempDir(), "people.tsv")
	if err := os.WriteFile(people, []byte(PeopleTSV(demo.People(Seeded))), 0o644); err != nil {
		t.Fatalf("samba: %v", err)
	}

	begin := time.Now()
	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(), "OFFBOARD_SAMBA_DIR="+dir, "OFFBOARD_SAMBA_PEOPLE="+people, "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
	// Its own process group, so cleanup reaches every samba process; and
	// killed with the test binary should that die without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("samba: %v", err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("samba: start %s: %v", script, err)
	}
	exited := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "offboard-samba: starting" {
				close(started)
				break
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	t.Cleanup(stop)

	// Provisioning (first run only) takes ≈ 10 s; waiting for another
	// test binary's DC to stop can take longer.
	select {
	case <-started:
	case err := <-exited:
		t.Fatalf("samba: %s exited before starting samba: %v\n%s", script, err, stderr.String())
	case <-time.After(5 * time.Minute):
		t.Fatalf("samba: %s did not start samba within 5 minutes\n%s", script, stderr.String())
	}

	dc := &DC{
		URL:      "ldaps://127.0.0.1:636",
		CAFile:   filepath.Join(dir, "tls", "ca.crt"),
		BindDN:   "CN=Administrator," + UsersDN,
		BindUPN:  "Administrator@" + strings.ToLower(Realm),
		Password: AdminPassword,
		BaseDN:   BaseDN,
		Dir:      dir,
	}
	if err := waitLDAPS(dc.CAFile, "127.0.0.1:636", exited, 60*time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log", "samba.log"))
		t.Fatalf("samba: %v\n%s\n%s", err, stderr.String(), tail(string(log), 2000))
	}
	if strings.Contains(stderr.String(), "provisioning") {
		t.Logf("samba: provisioned a new DC and snapshot, LDAPS up after %s", time.Since(begin).Round(time.Millisecond))
	} else {
		t.Logf("samba: DC restored from snapshot, LDAPS up after %s", time.Since(begin).Round(time.Millisecond))
	}
	return dc
}

// PeopleTSV is the seed file scripts/samba/seed.py reads.
func PeopleTSV(people []demo.Person) string {
	var b strings.Builder
	for _, p := range people {
		fmt.Fprintf(&b, "%s\t%s\t%s\t%s\t%s\t%s\t%t\n", p.EmployeeID, p.Login, p.Email, p.First, p.Last, p.Department, p.Privileged)
	}
	return b.String()
}

// waitLDAPS polls until a TLS handshake with the DC's certificate succeeds
// and the server answers an LDAP request, or the deadline passes.
func waitLDAPS(caFile, addr string, exited <-chan error, within time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = probe(caFile, addr); last == nil {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("samba exited while starting: %v (last probe: %v)", err, last)
		case <-ctx.Done():
			return fmt.Errorf("LDAPS on %s did not answer within %s: %v", addr, within, last)
		case <-tick.C:
		}
	}
}

// probe connects over LDAPS, trusting only the DC's CA, and reads the rootDSE.
func probe(caFile, addr string) error {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return errors.New("no certificate in " + caFile)
	}
	conn, err := ldap.DialURL("ldaps://"+addr,
		ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool}),
		ldap.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}))
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetTimeout(2 * time.Second)
	_, err = conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"defaultNamingContext"}, nil))
	return err
}

// findScript locates scripts/samba/start.sh: $OFFBOARD_SAMBA_SCRIPTS, else
// the module root found by walking up from the test's directory.
func findScript() (string, error) {
	if d := os.Getenv("OFFBOARD_SAMBA_SCRIPTS"); d != "" {
		return filepath.Join(d, "start.sh"), nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "scripts", "samba", "start.sh")
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("no %s: %w", p, err)
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("scripts/samba/start.sh not found above the working directory; set OFFBOARD_SAMBA_SCRIPTS")
		}
		dir = parent
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
