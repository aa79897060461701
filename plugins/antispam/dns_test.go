package main

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// testDNS is an authoritative DNS server on 127.0.0.1, UDP and TCP on one
// port, answering from master-file lines; any other name is NXDOMAIN.
type testDNS struct {
	addr    string
	mu      sync.Mutex
	rrs     map[string][]dns.RR // "name./TYPE"
	names   map[string]bool     // names that exist: NODATA, not NXDOMAIN
	rcode   map[string]int      // a fixed rcode for every query about a name
	queries atomic.Int64
}

func startDNS(t testing.TB, zone ...string) *testDNS {
	t.Helper()
	d := &testDNS{rrs: map[string][]dns.RR{}, names: map[string]bool{}, rcode: map[string]int{}}
	d.add(t, zone...)
	pc, l := listenUDPAndTCP(t)
	d.addr = pc.LocalAddr().String()
	mux := dns.NewServeMux()
	mux.HandleFunc(".", d.serve)
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: mux}, {Listener: l, Handler: mux}} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go s.ActivateAndServe()
		<-started
		t.Cleanup(func() { s.Shutdown() })
	}
	return d
}

// add serves more records, e.g. `example.test. 300 IN TXT "v=spf1 -all"`.
func (d *testDNS) add(t testing.TB, zone ...string) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, line := range zone {
		rr, err := dns.NewRR(line)
		if err != nil {
			t.Fatalf("zone line %q: %v", line, err)
		}
		h := rr.Header()
		name := strings.ToLower(h.Name)
		d.rrs[name+"/"+dns.TypeToString[h.Rrtype]] = append(d.rrs[name+"/"+dns.TypeToString[h.Rrtype]], rr)
		d.names[name] = true
	}
}

// fail answers every query about name with rcode, e.g. dns.RcodeRefused.
func (d *testDNS) fail(name string, rcode int) {
	d.mu.Lock()
	d.rcode[strings.ToLower(name)] = rcode
	d.mu.Unlock()
}

// txt builds a TXT line, splitting value into 255-byte strings as a DKIM
// RSA key must be.
func txt(name, value string) string {
	var parts []string
	for len(value) > 255 {
		parts = append(parts, `"`+value[:255]+`"`)
		value = value[255:]
	}
	parts = append(parts, `"`+value+`"`)
	return name + " 300 IN TXT " + strings.Join(parts, " ")
}

func (d *testDNS) serve(w dns.ResponseWriter, req *dns.Msg) {
	d.queries.Add(1)
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	m := new(dns.Msg).SetReply(req)
	m.Authoritative = true
	d.mu.Lock()
	m.Answer = append(m.Answer, d.rrs[name+"/"+dns.TypeToString[q.Qtype]]...)
	if !d.names[name] {
		m.Rcode = dns.RcodeNameError
	}
	if rc, ok := d.rcode[name]; ok {
		m.Rcode, m.Answer = rc, nil
	}
	d.mu.Unlock()
	w.WriteMsg(m)
}

// listenUDPAndTCP finds a port free for both protocols on 127.0.0.1.
func listenUDPAndTCP(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
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
	t.Fatal("no port free for both UDP and TCP")
	return nil, nil
}

// silentDNS is a UDP port that reads queries and never answers, like a
// DNS server that is down behind a firewall that drops packets.
func silentDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().String()
}
