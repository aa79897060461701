package e2e

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"

	"postline/tlsrpt"
)

// TLS reporting (RFC 8460): the sessions made under a domain's MTA-STS
// policy are counted, and each period (here 2 s; a day by default) a
// gzipped JSON report goes by mail to the rua of the domain's
// "_smtp._tls" record, with the successes and, per MX host and kind,
// the failures.
func TestTLSReports(t *testing.T) {
	t.Parallel()
	n := newRelayNet(t)
	ca := newTestCA(t)
	ph := startPolicyHost(t, ca, "sts.test", "stsbad.test")
	good := n.Sink(sinkOptions{TLS: &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "mx.sts.test")}}})
	bad := n.Sink(sinkOptions{StartTLS: true})
	for d, mx := range map[string]*sink{"sts.test": good, "stsbad.test": bad} {
		n.DNS.Add(t, d+". MX 10 mx."+d+".", "mx."+d+". A "+mx.IP,
			`_smtp._tls.`+d+`. TXT "v=TLSRPTv1; rua=mailto:`+demoUser+`"`)
		ph.publish(t, n, d, "1", enforcePolicy("mx."+d))
	}
	s := n.Stack(relayConfig{RetryMax: "1s", MTA: fmt.Sprintf("tls_roots = %q\nmta_sts_port = %d\ntls_report_period = \"2s\"\n", ca.File, ph.Port)})

	for i := range 2 {
		submitRelay(t, s, relayMessage(fmt.Sprintf("report %d", i), "user@sts.test"), "user@sts.test")
		good.WaitMessages(t, i+1, 10*time.Second)
	}
	submitRelay(t, s, relayMessage("never delivered", "user@stsbad.test"), "user@stsbad.test")

	var successes, failures int
	var failure tlsrpt.FailureDetail
	var policy tlsrpt.PolicyDesc
	deadline := time.Now().Add(20 * time.Second)
	// Sessions are counted, not messages: the second message may reuse
	// the first one's session.
	for successes < good.Conns() || failures == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("reports so far: %d successes for sts.test (%d sessions), %d failures for stsbad.test", successes, good.Conns(), failures)
		}
		time.Sleep(200 * time.Millisecond)
		successes, failures = 0, 0
		for _, r := range readTLSReports(t, s) {
			for _, p := range r.Policies {
				switch p.Policy.Domain {
				case "sts.test":
					successes += p.Summary.Successful
				case "stsbad.test":
					failures += p.Summary.Failed
					if len(p.FailureDetails) > 0 {
						failure, policy = p.FailureDetails[0], p.Policy
					}
				}
			}
		}
	}
	if successes != good.Conns() {
		t.Errorf("sts.test: %d successful sessions reported, want %d", successes, good.Conns())
	}
	if failure.ResultType != tlsrpt.CertificateHostMismatch || failure.ReceivingMX != "mx.stsbad.test" ||
		failure.ReceivingIP != bad.IP || failure.FailedCount < 1 {
		t.Errorf("stsbad.test failure: %+v", failure)
	}
	if policy.Type != "sts" || strings.Join(policy.Strings, "|") != "version: STSv1|mode: enforce|mx: mx.stsbad.test|max_age: 86400" ||
		strings.Join(policy.MXHosts, " ") != "mx.stsbad.test" {
		t.Errorf("stsbad.test policy: %+v", policy)
	}
}

// readTLSReports parses every TLS report in demo's mailbox.
func readTLSReports(t *testing.T, s *Stack) []tlsrpt.Report {
	t.Helper()
	dir := filepath.Join(s.Mailbox(demoUser), "new")
	entries, _ := os.ReadDir(dir)
	var reports []tlsrpt.Report
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil || !bytes.Contains(raw, []byte("TLS-Report-Domain:")) {
			continue
		}
		reports = append(reports, parseTLSReport(t, raw))
	}
	return reports
}

// parseTLSReport checks a report message's form (RFC 8460 §5.3) and
// returns its JSON.
func parseTLSReport(t *testing.T, raw []byte) tlsrpt.Report {
	t.Helper()
	m, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("report does not parse: %v\n%s", err, raw)
	}
	typ, params, _ := m.Header.ContentType()
	domain := m.Header.Get("TLS-Report-Domain")
	if typ != "multipart/report" || params["report-type"] != "tlsrpt" || m.Header.Get("TLS-Report-Submitter") != "example.test" ||
		!strings.HasPrefix(m.Header.Get("Subject"), "Report Domain: "+domain+" Submitter: example.test Report-ID: <") {
		t.Errorf("report header: %v", m.Header)
	}
	mr := m.MultipartReader()
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ct, params, _ := p.Header.ContentType(); ct == "application/tlsrpt+gzip" {
			if !strings.HasPrefix(params["name"], "example.test!"+domain+"!") || !strings.HasSuffix(params["name"], ".json.gz") {
				t.Errorf("report file name %q", params["name"])
			}
			zr, err := gzip.NewReader(p.Body)
			if err != nil {
				t.Fatal(err)
			}
			var r tlsrpt.Report
			if err := json.NewDecoder(zr).Decode(&r); err != nil {
				t.Fatal(err)
			}
			return r
		}
	}
	t.Fatalf("report without an application/tlsrpt+gzip part:\n%s", raw)
	return tlsrpt.Report{}
}
