package certs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/acme"
)

// Challenges answers the CA's validation requests while an order runs:
// http-01 on acme.http_listen (only /.well-known/acme-challenge/, RFC
// 8555 §8.3), tls-alpn-01 on acme.tls_listen (RFC 8737).
type Challenges struct {
	mu   sync.Mutex
	http map[string]string           // token: key authorization
	alpn map[string]*tls.Certificate // name: challenge certificate
}

const challengePath = "/.well-known/acme-challenge/"

// prepare makes chal answerable; done takes it back.
func (c *Challenges) prepare(client *acme.Client, chal *acme.Challenge, name string) (done func(), err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch chal.Type {
	case "http-01":
		resp, err := client.HTTP01ChallengeResponse(chal.Token)
		if err != nil {
			return nil, fmt.Errorf("acme: http-01 for %s: %w", name, err)
		}
		if c.http == nil {
			c.http = map[string]string{}
		}
		c.http[chal.Token] = resp
		return func() { c.mu.Lock(); delete(c.http, chal.Token); c.mu.Unlock() }, nil
	case "tls-alpn-01":
		cert, err := client.TLSALPN01ChallengeCert(chal.Token, name)
		if err != nil {
			return nil, fmt.Errorf("acme: tls-alpn-01 for %s: %w", name, err)
		}
		if c.alpn == nil {
			c.alpn = map[string]*tls.Certificate{}
		}
		c.alpn[name] = &cert
		return func() { c.mu.Lock(); delete(c.alpn, name); c.mu.Unlock() }, nil
	}
	return nil, fmt.Errorf("acme: challenge type %s is not one postline answers", chal.Type)
}

// ServeHTTP answers http-01 validations and nothing else.
func (c *Challenges) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, challengePath)
	c.mu.Lock()
	resp, known := c.http[token]
	c.mu.Unlock()
	if !ok || !known || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte(resp))
}

// TLSConfig answers tls-alpn-01 validations: a handshake asking for the
// acme-tls/1 protocol gets the challenge certificate of its name.
func (c *Challenges) TLSConfig() *tls.Config {
	return &tls.Config{
		NextProtos: []string{acme.ALPNProto},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			c.mu.Lock()
			cert := c.alpn[strings.ToLower(hello.ServerName)]
			c.mu.Unlock()
			if cert == nil || !slices.Contains(hello.SupportedProtos, acme.ALPNProto) {
				return nil, errors.New("no ACME challenge for this name")
			}
			return cert, nil
		},
	}
}
