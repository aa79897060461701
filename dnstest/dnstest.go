// Package dnstest runs a real DNS server on 127.0.0.1 for other packages'
// tests, serving the records a test writes in master-file syntax. Like
// users/userstest it exists for tests only: no daemon or plugin may
// import it.
//
// The server is authoritative for every name: it answers with the
// records it holds, NODATA for a known name without records of the asked
// type and NXDOMAIN for any other name. A test can also make a name fail
// with a fixed rcode, go unanswered, or come back truncated over UDP.
package dnstest

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Server answers UDP and TCP queries on one port until the test ends.
type Server struct {
	Addr string // "127.0.0.1:PORT", for both UDP and TCP

	mu       sync.Mutex
	rrs      map[string][]dns.RR // by "name./TYPE", name in lower case
	names    map[string]bool     // names that exist: NODATA, not NXDOMAIN
	rcode    map[string]int      // a fixed rcode for every query about a name
	silent   map[string]bool     // never answered: the client times out
	truncate map[string]bool     // UDP answers come back empty with TC set
	queries  []string            // "udp A name." in arrival order
}

// Start starts a server holding zone, lines such as
// "example.test. 300 IN MX 10 mx.example.test.", and stops it when the
// test ends.
func Start(t testing.TB, zone ...string) *Server {
	t.Helper()
	s := &Server{rrs: map[string][]dns.RR{}, names: map[string]bool{}, rcode: map[string]int{},
		silent: map[string]bool{}, truncate: map[string]bool{}}
	s.Add(t, zone...)
	pc, l := listenUDPAndTCP(t)
	s.Addr = pc.LocalAddr().String()
	mux := dns.NewServeMux()
	mux.HandleFunc(".", s.serve)
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: mux}, {Listener: l, Handler: mux}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return s
}

// listenUDPAndTCP finds a port free for both protocols on 127.0.0.1.
func listenUDPAndTCP(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 100 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l
		}
		pc.Close()
	}
	t.Fatal("dnstest: no port free for both UDP and TCP")
	return nil, nil
}

// Add serves more records, e.g. `example.test. 300 IN TXT "v=spf1 -all"`.
func (s *Server) Add(t testing.TB, zone ...string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, line := range zone {
		rr, err := dns.NewRR(line)
		if err != nil || rr == nil {
			t.Fatalf("dnstest: zone line %q: %v", line, err)
		}
		name := strings.ToLower(rr.Header().Name)
		key := name + "/" + dns.TypeToString[rr.Header().Rrtype]
		s.rrs[key] = append(s.rrs[key], rr)
		s.names[name] = true
	}
}

// Replace is Add after removing the records that zone's lines name
// (the same name and type), as a zone update would.
func (s *Server) Replace(t testing.TB, zone ...string) {
	t.Helper()
	s.mu.Lock()
	for _, line := range zone {
		if rr, err := dns.NewRR(line); err == nil && rr != nil {
			delete(s.rrs, strings.ToLower(rr.Header().Name)+"/"+dns.TypeToString[rr.Header().Rrtype])
		}
	}
	s.mu.Unlock()
	s.Add(t, zone...)
}

// Fail answers every query about name with rcode and no records, e.g.
// dns.RcodeServerFailure; dns.RcodeSuccess makes it answer normally again.
func (s *Server) Fail(name string, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rcode == dns.RcodeSuccess {
		delete(s.rcode, fqdn(name))
	} else {
		s.rcode[fqdn(name)] = rcode
	}
}

// Silent drops every query about name, like a server behind a firewall:
// the client times out.
func (s *Server) Silent(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silent[fqdn(name)] = true
}

// Truncate answers UDP queries about name with no records and the TC bit
// set, so that the client must ask again over TCP (RFC 1035 §4.2.1).
func (s *Server) Truncate(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.truncate[fqdn(name)] = true
}

// Queries returns the queries so far in arrival order, each written as
// "udp A name." (network, type, lower-case name as asked).
func (s *Server) Queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries...)
}

func fqdn(name string) string { return strings.ToLower(dns.Fqdn(name)) }

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg).SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	network := w.RemoteAddr().Network()
	s.mu.Lock()
	s.queries = append(s.queries, network+" "+dns.TypeToString[q.Qtype]+" "+name)
	for _, rr := range s.rrs[name+"/"+dns.TypeToString[q.Qtype]] {
		m.Answer = append(m.Answer, dns.Copy(rr))
	}
	if !s.names[name] {
		m.Rcode = dns.RcodeNameError
	}
	rcode, failing := s.rcode[name]
	silent, truncate := s.silent[name], s.truncate[name]
	s.mu.Unlock()
	switch {
	case silent:
		return
	case failing:
		m.Answer, m.Rcode = nil, rcode
	case truncate && network == "udp":
		m.Answer, m.Truncated = nil, true
	}
	w.WriteMsg(m)
}
