package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
)

// Report is the JSON of §4.4.
type Report struct {
	OrganizationName string       `json:"organization-name"`
	DateRange        DateRange    `json:"date-range"`
	ContactInfo      string       `json:"contact-info"`
	ReportID         string       `json:"report-id"`
	Policies         []PolicyPart `json:"policies"`
}

// DateRange is the report's period.
type DateRange struct {
	Start time.Time `json:"start-datetime"`
	End   time.Time `json:"end-datetime"`
}

// PolicyPart is one policy's counts.
type PolicyPart struct {
	Policy         PolicyDesc      `json:"policy"`
	Summary        Summary         `json:"summary"`
	FailureDetails []FailureDetail `json:"failure-details,omitempty"`
}

// PolicyDesc names the policy.
type PolicyDesc struct {
	Type    string   `json:"policy-type"`
	Strings []string `json:"policy-string"`
	Domain  string   `json:"policy-domain"`
	MXHosts []string `json:"mx-host,omitempty"`
}

// Summary counts sessions.
type Summary struct {
	Successful int `json:"total-successful-session-count"`
	Failed     int `json:"total-failure-session-count"`
}

// FailureDetail counts failures of one kind with one host.
type FailureDetail struct {
	ResultType  string `json:"result-type"`
	SendingIP   string `json:"sending-mta-ip,omitempty"`
	ReceivingMX string `json:"receiving-mx-hostname,omitempty"`
	ReceivingIP string `json:"receiving-ip,omitempty"`
	FailedCount int    `json:"failed-session-count"`
}

// Build is domain's report over sessions (those of other domains are
// skipped), from submitter (this host's name), for start to end.
func Build(sessions []Session, domain, submitter, contact string, start, end time.Time) *Report {
	r := &Report{OrganizationName: submitter, DateRange: DateRange{start.UTC(), end.UTC()},
		ContactInfo: contact, ReportID: newID() + "@" + submitter}
	index := map[string]int{} // policy key: index in r.Policies
	for _, s := range sessions {
		if s.PolicyDomain != domain {
			continue
		}
		key := s.PolicyType + "\x00" + strings.Join(s.PolicyStrings, "\n") + "\x00" + strings.Join(s.MXHosts, " ")
		i, ok := index[key]
		if !ok {
			i = len(r.Policies)
			index[key] = i
			r.Policies = append(r.Policies, PolicyPart{Policy: PolicyDesc{Type: s.PolicyType,
				Strings: s.PolicyStrings, Domain: domain, MXHosts: s.MXHosts}})
		}
		r.Policies[i].count(s)
	}
	return r
}

func (p *PolicyPart) count(s Session) {
	if s.Failure == "" {
		p.Summary.Successful++
		return
	}
	p.Summary.Failed++
	for i, d := range p.FailureDetails {
		if d.ResultType == s.Failure && d.ReceivingMX == s.ReceivingMX && d.ReceivingIP == s.ReceivingIP && d.SendingIP == s.SendingIP {
			p.FailureDetails[i].FailedCount++
			return
		}
	}
	p.FailureDetails = append(p.FailureDetails, FailureDetail{ResultType: s.Failure, SendingIP: s.SendingIP,
		ReceivingMX: s.ReceivingMX, ReceivingIP: s.ReceivingIP, FailedCount: 1})
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Message is the report as mail from from to to (§5.3): a
// multipart/report with a text part and the gzipped JSON.
func Message(r *Report, domain, from, to string) ([]byte, error) {
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(js)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	var h mail.Header
	h.SetContentType("multipart/report", map[string]string{"report-type": "tlsrpt"})
	h.Set("MIME-Version", "1.0")
	// Added raw: Set would write them as "Tls-Report-…".
	h.AddRaw([]byte("TLS-Report-Submitter: " + r.OrganizationName + "\r\n"))
	h.AddRaw([]byte("TLS-Report-Domain: " + domain + "\r\n"))
	h.GenerateMessageIDWithHostname(r.OrganizationName)
	h.SetDate(time.Now())
	h.SetSubject(fmt.Sprintf("Report Domain: %s Submitter: %s Report-ID: <%s>", domain, r.OrganizationName, r.ReportID))
	h.SetAddressList("To", []*mail.Address{{Address: to}})
	h.SetAddressList("From", []*mail.Address{{Name: "TLS reports", Address: from}})
	var buf bytes.Buffer
	w, err := message.CreateWriter(&buf, h.Header)
	if err != nil {
		return nil, err
	}
	if err := textPart(w, r, domain); err != nil {
		return nil, err
	}
	if err := gzipPart(w, r, domain, gz.Bytes()); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func textPart(w *message.Writer, r *Report, domain string) error {
	var h message.Header
	h.SetContentType("text/plain", map[string]string{"charset": "us-ascii"})
	pw, err := w.CreatePart(h)
	if err != nil {
		return err
	}
	fmt.Fprintf(pw, "This is the SMTP TLS report (RFC 8460) of %s for %s,\r\nfrom %s to %s.\r\n",
		r.OrganizationName, domain, r.DateRange.Start.Format(time.RFC3339), r.DateRange.End.Format(time.RFC3339))
	return pw.Close()
}

// gzipPart attaches the report under §5.1's file name:
// submitter!policy-domain!begin!end!unique-id.json.gz.
func gzipPart(w *message.Writer, r *Report, domain string, gz []byte) error {
	name := fmt.Sprintf("%s!%s!%d!%d!%s.json.gz", r.OrganizationName, domain,
		r.DateRange.Start.Unix(), r.DateRange.End.Unix(), strings.SplitN(r.ReportID, "@", 2)[0])
	var h message.Header
	h.SetContentType("application/tlsrpt+gzip", map[string]string{"name": name})
	h.SetContentDisposition("attachment", map[string]string{"filename": name})
	h.Set("Content-Transfer-Encoding", "base64")
	pw, err := w.CreatePart(h)
	if err != nil {
		return err
	}
	if _, err := pw.Write(gz); err != nil {
		return err
	}
	return pw.Close()
}
