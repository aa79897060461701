package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// MaxPolicySize bounds a policy file (§3.3 leaves it to senders; 64 KiB
// is what the RFC's authors suggested and what others use).
const MaxPolicySize = 64 << 10

// Resolver is the DNS this package asks: the MTA's own resolver, so
// that the policy host is found where the MX hosts are.
type Resolver interface {
	// LookupTXT returns name's TXT records; none (and no error) when the
	// name or its records do not exist.
	LookupTXT(ctx context.Context, name string) ([]string, error)
	// LookupAddrs returns name's addresses.
	LookupAddrs(ctx context.Context, name string) ([]netip.Addr, error)
}

// Fetcher finds a domain's policy.
type Fetcher struct {
	Resolver Resolver
	// Roots verify the policy host's certificate (nil: the system's).
	Roots *x509.CertPool
	// Port is the HTTPS port (0: 443; tests use another).
	Port int
	// Timeout bounds one fetch (0: 10 seconds: §3.3 says a minute at
	// most, and a slow policy host must not stall a queue run).
	Timeout time.Duration
}

var errRedirect = errors.New("mta-sts: the policy host redirects; RFC 8461 §3.3 forbids following it")

// LookupID returns the id of the domain's "_mta-sts" TXT record, "" when
// it has none (or a broken one).
func (f *Fetcher) LookupID(ctx context.Context, domain string) (string, error) {
	txts, err := f.Resolver.LookupTXT(ctx, "_mta-sts."+domain)
	if err != nil {
		return "", fmt.Errorf("mta-sts: lookup _mta-sts.%s TXT: %w", domain, err)
	}
	return RecordID(txts), nil
}

// Fetch gets and parses https://mta-sts.<domain>/.well-known/mta-sts.txt.
func (f *Fetcher) Fetch(ctx context.Context, domain string) (*Policy, error) {
	timeout := f.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	client := &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return errRedirect },
		Transport: &http.Transport{
			DialContext:       f.dial,
			TLSClientConfig:   &tls.Config{RootCAs: f.Roots, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true,
		},
	}
	url := "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("mta-sts: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mta-sts: fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := readPolicy(resp)
	if err != nil {
		return nil, fmt.Errorf("mta-sts: fetch %s: %w", url, err)
	}
	return Parse(body)
}

// readPolicy checks the answer (200, text/plain, §3.3) and reads its body.
func readPolicy(resp *http.Response) (string, error) {
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return "", fmt.Errorf("content type %q, want text/plain", resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err != nil {
		return "", err
	}
	if len(body) > MaxPolicySize {
		return "", fmt.Errorf("policy over %d bytes", MaxPolicySize)
	}
	return string(body), nil
}

// dial connects to the policy host, found with the MTA's resolver, at
// f.Port.
func (f *Fetcher) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	addrs, err := f.Resolver.LookupAddrs(ctx, host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%s has no address", host)
	}
	port := f.Port
	if port == 0 {
		port = 443
	}
	var errs []error
	for _, a := range addrs {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(a.String(), strconv.Itoa(port)))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}
