// Package tlsrpt is SMTP TLS Reporting (RFC 8460) from the sending
// side: it keeps the outcome of each TLS session made under a domain's
// DANE or MTA-STS policy, and builds the daily report that such a
// domain asks for in its "_smtp._tls" TXT record, as a message.
//
// Implemented: §3 (the TXT record, rua=mailto: addresses), §4 (the
// report: date range, policies with their type, strings, domain and MX
// hosts, session counts, failure details with the result types of §4.3
// that postline can tell apart), §5.1 (the file name), §5.3 (mail:
// multipart/report; report-type="tlsrpt" with an application/tlsrpt+gzip
// part, the TLS-Report-Domain and TLS-Report-Submitter fields and the
// Subject). Left out: https rua endpoints (§5.2; the MTA sends by mail
// only), "no-policy-found" reports for domains without a policy (§4.4
// makes them optional), and sessions the MTA could not connect for at
// all (no TLS was tried).
//
// It never sends anything: the MTA records sessions and queues the
// messages Message returns.
package tlsrpt

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"postline/address"
)

// Policy types (§4.4).
const (
	PolicySTS  = "sts"
	PolicyTLSA = "tlsa"
)

// Result types of failures (§4.3) that the MTA reports.
const (
	StartTLSNotSupported    = "starttls-not-supported"
	CertificateHostMismatch = "certificate-host-mismatch"
	CertificateExpired      = "certificate-expired"
	CertificateNotTrusted   = "certificate-not-trusted"
	ValidationFailure       = "validation-failure"
)

// Session is the outcome of one TLS session (or attempt) under a policy.
type Session struct {
	Time          time.Time `json:"time"`
	PolicyType    string    `json:"policy_type"`
	PolicyDomain  string    `json:"policy_domain"`
	PolicyStrings []string  `json:"policy_strings"`
	MXHosts       []string  `json:"mx_hosts"` // the policy's MX patterns (sts) or the MX host (tlsa)
	// Failure is the result type of a failed session, "" for success.
	Failure     string `json:"failure,omitempty"`
	SendingIP   string `json:"sending_ip,omitempty"`
	ReceivingMX string `json:"receiving_mx,omitempty"`
	ReceivingIP string `json:"receiving_ip,omitempty"`
}

// Store keeps sessions in a file (one JSON line each) until a report
// takes them; the file's folder must exist (the MTA's is made at start). A line is appended without a flush: a crash may lose the
// last counts of a report, never mail.
type Store struct {
	Path string

	mu sync.Mutex
}

// Record appends sessions.
func (st *Store) Record(sessions ...Session) error {
	var b []byte
	for _, s := range sessions {
		line, err := json.Marshal(s)
		if err != nil {
			return err
		}
		b = append(append(b, line...), '\n')
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	f, err := os.OpenFile(st.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("tlsrpt: %w", err)
	}
	defer f.Close()
	_, err = f.Write(b)
	return err
}

// Take removes and returns the sessions before until; later ones stay.
func (st *Store) Take(until time.Time) ([]Session, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	b, err := os.ReadFile(st.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tlsrpt: %w", err)
	}
	var taken []Session
	var rest bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var s Session
		if json.Unmarshal(sc.Bytes(), &s) != nil {
			continue // a line cut short by a crash
		}
		if s.Time.Before(until) {
			taken = append(taken, s)
		} else {
			rest.Write(append(sc.Bytes(), '\n'))
		}
	}
	tmp := st.Path + ".tmp"
	if err := os.WriteFile(tmp, rest.Bytes(), 0o600); err != nil {
		return nil, fmt.Errorf("tlsrpt: %w", err)
	}
	return taken, os.Rename(tmp, st.Path)
}

// Domains returns the policy domains of sessions, sorted.
func Domains(sessions []Session) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range sessions {
		if !seen[s.PolicyDomain] {
			seen[s.PolicyDomain] = true
			out = append(out, s.PolicyDomain)
		}
	}
	sort.Strings(out)
	return out
}

// MaxRUAs bounds the addresses one domain's report goes to, so that a
// record cannot make this host mail a list of strangers every day.
const MaxRUAs = 5

// mailtoAddress is the address of a "mailto:" URI (RFC 6068): decoded,
// without "?" header fields, and only when it is a valid address.
func mailtoAddress(uri string) (string, bool) {
	u, err := url.Parse(uri)
	if err != nil || !strings.EqualFold(u.Scheme, "mailto") || u.Opaque == "" {
		return "", false
	}
	addr, err := url.PathUnescape(u.Opaque)
	if err != nil {
		return "", false
	}
	if _, err := address.Parse(addr); err != nil {
		return "", false
	}
	return addr, true
}

// RUAs returns the mailto: addresses of the one "v=TLSRPTv1" record
// among txts (§3); none when there is no such record or several.
func RUAs(txts []string) []string {
	var found []string
	records := 0
	for _, txt := range txts {
		fields := strings.Split(txt, ";")
		if strings.TrimSpace(fields[0]) != "v=TLSRPTv1" {
			continue
		}
		records++
		for _, f := range fields[1:] {
			key, value, _ := strings.Cut(strings.TrimSpace(f), "=")
			if key != "rua" {
				continue
			}
			for _, uri := range strings.Split(value, ",") {
				if addr, ok := mailtoAddress(strings.TrimSpace(uri)); ok && len(found) < MaxRUAs {
					found = append(found, addr)
				}
			}
		}
	}
	if records != 1 {
		return nil
	}
	return found
}
