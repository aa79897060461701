// Package received is postline's bundled data-hook filter, run by default
// in the MSA (for each submission) and in the MTA (for mail from the
// internet; never for what the MSA hands over on the trusted socket, which
// already has its field): inside the daemon (sdk.Direct), or as the plugin
// bin/postline-plugin-received (cmd/postline-plugin-received) when its
// [[plugins]] table names that path.
//
// RFC 5321 §4.4: a host that takes a message in prepends a Received trace
// field. It is written as Postfix writes it:
//
//	Received: from HELO (RDNS [IP])
//		by HOSTNAME with ESMTPSA
//		(using TLSv1.3 with cipher TLS_AES_128_GCM_SHA256)
//		id QUEUEID
//		for <rcpt>; Sun, 22 Nov 2026 08:45:30 +0000
//
// "unknown" stands for a client without verified reverse DNS; the TLS
// comment only appears when TLS was used; "for" only with exactly one
// recipient, since naming several would disclose Bcc recipients. The
// plugin needs the header block only, never the body.
package received

import (
	"context"
	"sync"
	"time"

	"postline/plugins/sdk"
)

type filter struct {
	mu       sync.Mutex
	hostname string
	now      func() time.Time
}

// SetHost keeps the host's name for the "by" clause.
func (f *filter) SetHost(h sdk.Host) {
	f.mu.Lock()
	f.hostname = h.Hostname
	f.mu.Unlock()
}

// HeadersOnly: the trace field depends on the session, not the body.
func (f *filter) HeadersOnly() bool { return true }

// Data prepends the Received field.
func (f *filter) Data(_ context.Context, m *sdk.Message) (sdk.Verdict, error) {
	f.mu.Lock()
	host := f.hostname
	f.mu.Unlock()
	tr := Trace{Hostname: host, Recipients: m.Recipients, Date: f.now()}
	if m.Conn != nil {
		c := m.Conn
		tr.Helo, tr.ReverseDNS, tr.IP = c.Helo, c.ReverseDNS, c.ClientIP
		tr.Protocol, tr.TLSVersion, tr.TLSCipher = c.Protocol, c.TLSVersion, c.TLSCipher
		tr.Authenticated, tr.QueueID = c.AuthUser != "", c.QueueID
	}
	return sdk.Continue().With(sdk.Prepend("Received", tr.Field())), nil
}

// New returns the filter, for sdk.Serve or sdk.Direct.
func New() any { return &filter{now: time.Now} }
