package dnstest

import (
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func ask(t *testing.T, s *Server, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 300 * time.Millisecond}
	m, _, err := c.Exchange(new(dns.Msg).SetQuestion(name, qtype), s.Addr)
	if err != nil {
		t.Fatalf("%s %s: %v", network, name, err)
	}
	return m
}

func TestAnswers(t *testing.T) {
	s := Start(t, "Example.TEST. 300 IN A 192.0.2.1")
	s.Add(t, `example.test. 300 IN TXT "hello"`)
	for _, tc := range []struct {
		name    string
		qtype   uint16
		rcode   int
		answers int
	}{
		{"example.test.", dns.TypeA, dns.RcodeSuccess, 1},
		{"EXAMPLE.test.", dns.TypeTXT, dns.RcodeSuccess, 1},
		{"example.test.", dns.TypeMX, dns.RcodeSuccess, 0}, // NODATA
		{"nowhere.test.", dns.TypeA, dns.RcodeNameError, 0},
	} {
		m := ask(t, s, "udp", tc.name, tc.qtype)
		if m.Rcode != tc.rcode || len(m.Answer) != tc.answers || !m.Authoritative {
			t.Errorf("%s %s: rcode %d, %d answers; want %d, %d", tc.name, dns.TypeToString[tc.qtype],
				m.Rcode, len(m.Answer), tc.rcode, tc.answers)
		}
	}
	want := []string{"udp A example.test.", "udp TXT example.test.", "udp MX example.test.", "udp A nowhere.test."}
	if got := s.Queries(); !slices.Equal(got, want) {
		t.Errorf("queries %q, want %q", got, want)
	}
}

func TestFailSilentTruncate(t *testing.T) {
	s := Start(t, "big.test. 300 IN A 192.0.2.1", "ok.test. 300 IN A 192.0.2.2")
	s.Fail("ok.test", dns.RcodeServerFailure)
	if m := ask(t, s, "udp", "ok.test.", dns.TypeA); m.Rcode != dns.RcodeServerFailure || len(m.Answer) != 0 {
		t.Errorf("failing name: rcode %d, %d answers", m.Rcode, len(m.Answer))
	}
	s.Fail("ok.test", dns.RcodeSuccess)
	if m := ask(t, s, "udp", "ok.test.", dns.TypeA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Errorf("healed name: rcode %d, %d answers", m.Rcode, len(m.Answer))
	}
	s.Truncate("big.test")
	if m := ask(t, s, "udp", "big.test.", dns.TypeA); !m.Truncated || len(m.Answer) != 0 {
		t.Errorf("UDP: truncated %v, %d answers", m.Truncated, len(m.Answer))
	}
	if m := ask(t, s, "tcp", "big.test.", dns.TypeA); m.Truncated || len(m.Answer) != 1 {
		t.Errorf("TCP: truncated %v, %d answers", m.Truncated, len(m.Answer))
	}
	s.Silent("slow.test")
	c := &dns.Client{Timeout: 100 * time.Millisecond}
	if _, _, err := c.Exchange(new(dns.Msg).SetQuestion("slow.test.", dns.TypeA), s.Addr); err == nil {
		t.Error("silent name was answered")
	}
}
