package tlsrpt

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRUAs(t *testing.T) {
	for _, tc := range []struct {
		txts []string
		want string
	}{
		{[]string{"v=TLSRPTv1; rua=mailto:tls@example.org"}, "tls@example.org"},
		{[]string{"v=TLSRPTv1;rua=mailto:a@example.org,https://r.example.org/x,mailto:b@example.org"}, "a@example.org b@example.org"},
		{[]string{"v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@example.org"}, "a@example.org"},
		{[]string{"v=TLSRPTv1; rua=mailto:a@example.org", "v=TLSRPTv1; rua=mailto:b@example.org"}, ""}, // two records: none
		{[]string{"v=TLSRPTv1; rua=https://r.example.org/x"}, ""},
		{[]string{"v=TLSRPTv1; rua=mailto:tls%40example.org?subject=x,mailto:not-an-address,mailto:"}, "tls@example.org"},
		{[]string{"v=TLSRPTv1; rua=mailto:a@x.org,mailto:b@x.org,mailto:c@x.org,mailto:d@x.org,mailto:e@x.org,mailto:f@x.org"},
			"a@x.org b@x.org c@x.org d@x.org e@x.org"}, // MaxRUAs
		{nil, ""},
	} {
		if got := strings.Join(RUAs(tc.txts), " "); got != tc.want {
			t.Errorf("RUAs(%q) = %q, want %q", tc.txts, got, tc.want)
		}
	}
}

func TestStoreTakeAndBuild(t *testing.T) {
	st := &Store{Path: filepath.Join(t.TempDir(), "sessions.jsonl")}
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	policy := Session{PolicyType: PolicySTS, PolicyDomain: "example.net", PolicyStrings: []string{"version: STSv1"}, MXHosts: []string{"mx.example.net"}}
	for i, failure := range []string{"", "", CertificateExpired, CertificateExpired, StartTLSNotSupported, ""} {
		s := policy
		s.Time, s.Failure, s.ReceivingMX = t0.Add(time.Duration(i)*time.Hour), failure, "mx.example.net"
		if i == 5 {
			s.Time = t0.Add(25 * time.Hour) // the next day
		}
		if err := st.Record(s); err != nil {
			t.Fatal(err)
		}
	}
	other := policy
	other.PolicyDomain, other.Time = "example.com", t0
	st.Record(other)
	day, err := st.Take(t0.Add(24 * time.Hour))
	if err != nil || len(day) != 6 {
		t.Fatalf("Take: %d sessions, %v", len(day), err)
	}
	if got := strings.Join(Domains(day), " "); got != "example.com example.net" {
		t.Errorf("Domains = %s", got)
	}
	r := Build(day, "example.net", "example.org", "postmaster@example.org", t0, t0.Add(24*time.Hour))
	if len(r.Policies) != 1 {
		t.Fatalf("policies: %+v", r.Policies)
	}
	p := r.Policies[0]
	if p.Summary.Successful != 2 || p.Summary.Failed != 3 || len(p.FailureDetails) != 2 ||
		p.FailureDetails[0].ResultType != CertificateExpired || p.FailureDetails[0].FailedCount != 2 {
		t.Errorf("policy counts: %+v", p)
	}
	if next, _ := st.Take(t0.Add(48 * time.Hour)); len(next) != 1 {
		t.Errorf("the next day's session: %d left", len(next))
	}
	if again, _ := st.Take(t0.Add(48 * time.Hour)); len(again) != 0 {
		t.Errorf("taken twice: %d", len(again))
	}
}
