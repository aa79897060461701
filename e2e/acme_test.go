package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"postline/dnstest"
)

// pebbleCA is Debian's pebble ACME test server, run by the test, asking
// the test's DNS server where the names it validates are.
type pebbleCA struct {
	Directory string
	mgmt      string
	client    *http.Client // trusts pebble's own listener
	cmd       *exec.Cmd
}

func startPebble(t *testing.T, ca *testCA, dns string, httpPort, tlsPort int) *pebbleCA {
	t.Helper()
	bin := requireProgram(t, "pebble")
	dir := t.TempDir()
	listen, mgmt := freeAddr(t), freeAddr(t)
	listenIP, _, _ := net.SplitHostPort(listen)
	mgmtIP, _, _ := net.SplitHostPort(mgmt)
	cert := ca.issue(t, listenIP, mgmtIP)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	conf, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress": listen, "managementListenAddress": mgmt,
		"certificate": filepath.Join(dir, "cert.pem"), "privateKey": filepath.Join(dir, "key.pem"),
		"httpPort": httpPort, "tlsPort": tlsPort, "ocspResponderURL": "", "externalAccountBindingRequired": false}})
	os.WriteFile(filepath.Join(dir, "pebble.json"), conf, 0o600)
	cmd := exec.Command(bin, "-config", filepath.Join(dir, "pebble.json"), "-dnsserver", dns)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	var log syncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &pebbleCA{Directory: "https://" + listen + "/dir", mgmt: "https://" + mgmt, cmd: cmd}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("pebble:\n%s", log.String())
		}
	})
	roots := x509.NewCertPool()
	roots.AddCert(mustParse(t, ca.cert.Raw))
	p.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 5 * time.Second}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := p.client.Get(p.Directory); err == nil {
			resp.Body.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not start:\n%s", log.String())
		}
	}
}

func (p *pebbleCA) stop() {
	if p.cmd.Process != nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// root is the root pebble signs with (made anew at each start).
func (p *pebbleCA) root(t *testing.T) *x509.CertPool {
	t.Helper()
	resp, err := p.client.Get(p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatalf("pebble's root: %q", data)
	}
	return pool
}

// served is the certificate the MSA presents on implicit TLS, verified
// against roots for the host's name; nil while it does not verify.
func served(addr string, roots *x509.CertPool) *x509.Certificate {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: roots, ServerName: "mail.example.test"})
	if err != nil {
		return nil
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// waitServed waits until the MSA presents a certificate from roots that
// ok accepts.
func waitServed(t *testing.T, s *Stack, roots *x509.CertPool, ok func(*x509.Certificate) bool, what string) *x509.Certificate {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if c := served(s.Submissions, roots); c != nil && ok(c) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s certificate served; log:\n%s", what, s.Log())
		}
	}
}

// acmeStack starts postline with [acme] against p, answering the
// challenge on ip.
func acmeStack(t *testing.T, p *pebbleCA, ca *testCA, challenge, listen string, extra string) *Stack {
	t.Helper()
	return StartStackWith(t, StackConfig{Plugins: fmt.Sprintf(`
[acme]
email = "admin@example.test"
directory = %q
challenge = %q
http_listen = %q
tls_listen = %q
ca_roots = %q
%s`, p.Directory, challenge, listen, listen, ca.File, extra)})
}

// With [acme], postline gets its certificate from the CA (pebble,
// validating over http-01 through the test's DNS) and the listeners
// present it without a restart; when the test brings the renewal time
// forward the certificate is renewed; with the CA down, the renewal
// fails, the error is logged, the old certificate stays and mail flows.
func TestACMEHTTP01(t *testing.T) {
	t.Parallel()
	ip := randomLoopback()
	httpPort := 10000 + int(time.Now().UnixNano()%20000)
	dns := dnstest.Start(t, "mail.example.test. 300 IN A "+ip)
	ca := newTestCA(t)
	p := startPebble(t, ca, dns.Addr, httpPort, httpPort+1)
	s := acmeStack(t, p, ca, "http-01", net.JoinHostPort(ip, strconv.Itoa(httpPort)), "")
	roots := p.root(t)
	first := waitServed(t, s, roots, func(*x509.Certificate) bool { return true }, "first")
	validity := first.NotAfter.Sub(first.NotBefore)

	// Renew 5 s from now: renew_before is the validity less the time gone and 5 s.
	renewBefore := validity - time.Since(first.NotBefore) - 5*time.Second
	setRenewBefore(t, s, renewBefore)
	second := waitServed(t, s, roots, func(c *x509.Certificate) bool { return c.SerialNumber.Cmp(first.SerialNumber) != 0 }, "renewed")

	p.stop()
	setRenewBefore(t, s, validity)
	pollLog(s, 30*time.Second, func(log string) bool { return strings.Contains(log, "certificate not renewed; the current one stays") })
	if c := served(s.Submissions, roots); c == nil || c.SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Errorf("with the CA down the served certificate changed or went: %v", c)
	}
	if _, err := s.Submit(Submission{ImplicitTLS: true, To: []string{demoUser}, Body: "Subject: still\r\n\r\nx\r\n"}); err != nil {
		t.Fatalf("mail with the CA down: %v", err)
	}
	s.WaitForMail(demoUser, 1, 10*time.Second)
}

// setRenewBefore sets acme.renew_before and reloads postline.
func setRenewBefore(t *testing.T, s *Stack, d time.Duration) {
	t.Helper()
	data, _ := os.ReadFile(s.Config)
	if i := bytes.Index(data, []byte("\nrenew_before")); i >= 0 {
		data = data[:i+1]
	}
	data = fmt.Appendf(data, "renew_before = %q\n", d.Round(time.Second).String())
	if err := os.WriteFile(s.Config, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s.cmd.Process.Signal(syscall.SIGHUP)
}

// tls-alpn-01 answers the CA on acme.tls_listen instead.
func TestACMETLSALPN01(t *testing.T) {
	t.Parallel()
	ip := randomLoopback()
	tlsPort := 10000 + int(time.Now().UnixNano()%20000)
	dns := dnstest.Start(t, "mail.example.test. 300 IN A "+ip)
	ca := newTestCA(t)
	p := startPebble(t, ca, dns.Addr, tlsPort+1, tlsPort)
	s := acmeStack(t, p, ca, "tls-alpn-01", net.JoinHostPort(ip, strconv.Itoa(tlsPort)), "")
	waitServed(t, s, p.root(t), func(*x509.Certificate) bool { return true }, "first")
}

// With [mta_sts], the policy of each local domain is served over HTTPS
// at mta-sts.DOMAIN with a certificate from ACME that holds those names;
// curl, trusting only the CA's root, gets it; other paths and hosts 404.
func TestMTASTSPolicy(t *testing.T) {
	t.Parallel()
	checkPolicy(t, "http-01")
}

// With tls-alpn-01 on the policy's address, the one listener answers
// the CA and serves the policy.
func TestMTASTSPolicySharesTLSALPN(t *testing.T) {
	t.Parallel()
	checkPolicy(t, "tls-alpn-01")
}

func checkPolicy(t *testing.T, challenge string) {
	curl := requireProgram(t, "curl")
	ip := randomLoopback()
	port := 10000 + int(time.Now().UnixNano()%20000)
	dns := dnstest.Start(t, "mail.example.test. 300 IN A "+ip, "mta-sts.example.test. 300 IN A "+ip,
		"mta-sts.other.example. 300 IN A "+ip)
	ca := newTestCA(t)
	stsAddr := net.JoinHostPort(ip, strconv.Itoa(port+2))
	p := startPebble(t, ca, dns.Addr, port, port+2)    // tls-alpn-01 on the policy's port
	listen := net.JoinHostPort(ip, strconv.Itoa(port)) // http-01's
	if challenge == "tls-alpn-01" {
		listen = stsAddr
	}
	s := acmeStack(t, p, ca, challenge, listen,
		fmt.Sprintf("[mta_sts]\nmode = \"enforce\"\nmax_age = \"7d\"\nlisten = %q\n", stsAddr))
	rootPEM := filepath.Join(t.TempDir(), "root.pem")
	resp, err := p.client.Get(p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	os.WriteFile(rootPEM, data, 0o644)
	get := func(host, path string) (string, error) {
		_, port, _ := net.SplitHostPort(stsAddr)
		out, err := exec.Command(curl, "-sS", "--fail", "--cacert", rootPEM, "--resolve", host+":"+port+":"+ip,
			"https://"+host+":"+port+path).CombinedOutput()
		return string(out), err
	}
	want := "version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\nmax_age: 604800\r\n"
	var got string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		if got, err = get("mta-sts.example.test", "/.well-known/mta-sts.txt"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || got != want {
		t.Fatalf("the policy: %v %q, want %q; log:\n%s", err, got, want, s.Log())
	}
	if got, err := get("mta-sts.other.example", "/.well-known/mta-sts.txt"); err != nil || got != want {
		t.Errorf("the second domain's policy: %v %q", err, got)
	}
	if out, err := get("mta-sts.example.test", "/"); err == nil || !strings.Contains(out, "404") {
		t.Errorf("another path: %v %q, want 404", err, out)
	}
}
