package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"postline/plugins/sdk"
)

// config is the [plugins.config] table, checked. It never changes once
// Configure returns.
type config struct {
	routes    []*route
	byAddress map[string]*route // lower-case address
	byDomain  map[string]*route // lower-case domain
}

// route is one [[plugins.config.routes]] table: whose mail goes where.
type route struct {
	name        string // "routes[0]", for the log
	addresses   []string
	domains     []string
	url         string
	secret      []byte
	also        bool // mode = "also": the Maildir copy is written too
	timeout     time.Duration
	includeRaw  bool
	maxResponse int64 // bytes of a response body read, at most
	client      *http.Client
}

// minSecret is the shortest secret accepted: 16 bytes of randomness,
// written as text, is already 32 characters of hex.
const minSecret = 16

var (
	topKeys   = []string{"routes"}
	routeKeys = []string{"addresses", "domains", "url", "secret", "secret_file", "mode",
		"timeout", "include_raw", "max_response", "ca_file"}
)

// parseConfig checks the table. Every problem is reported at once, each
// naming its key and how to fix it, since the daemon refuses to start on
// any.
func parseConfig(raw map[string]any) (*config, error) {
	var errs []error
	t := table{sdk.ConfigTable{Prefix: "webhook: ", M: raw, Errs: &errs}}
	t.Unknown(topKeys)
	c := &config{byAddress: map[string]*route{}, byDomain: map[string]*route{}}
	items, ok := raw["routes"].([]any)
	switch {
	case raw["routes"] == nil || ok && len(items) == 0:
		t.Fail("routes", "none given; add a [[plugins.config.routes]] table with addresses or domains, url and secret")
	case !ok:
		t.Fail("routes", "got %s, want [[plugins.config.routes]] tables", sdk.Describe(raw["routes"]))
	}
	for i, it := range items {
		where := fmt.Sprintf("routes[%d]", i)
		m, ok := it.(map[string]any)
		if !ok {
			t.Fail(where, "got %s, want a table written [[plugins.config.routes]]", sdk.Describe(it))
			continue
		}
		if r := parseRoute(table{sdk.ConfigTable{Prefix: "webhook: ", Where: where, M: m, Errs: &errs}}); r != nil {
			c.add(r, table{sdk.ConfigTable{Prefix: "webhook: ", Where: where, M: m, Errs: &errs}})
		}
	}
	return c, errors.Join(errs...)
}

// add files r under its addresses and domains; each may belong to one
// route only, or which one posts would depend on the order.
func (c *config) add(r *route, t table) {
	for _, a := range r.addresses {
		if other := c.byAddress[a]; other != nil {
			t.Fail("addresses", "%q is already routed by %s; list it in one route only", a, other.name)
		}
		c.byAddress[a] = r
	}
	for _, d := range r.domains {
		if other := c.byDomain[d]; other != nil {
			t.Fail("domains", "%q is already routed by %s; list it in one route only", d, other.name)
		}
		c.byDomain[d] = r
	}
	c.routes = append(c.routes, r)
}

// match returns the route of recipient: the one listing the address,
// else the one listing its domain; nil when none does.
func (c *config) match(recipient string) *route {
	rcpt := strings.ToLower(recipient)
	if r := c.byAddress[rcpt]; r != nil {
		return r
	}
	if i := strings.LastIndexByte(rcpt, '@'); i >= 0 {
		return c.byDomain[rcpt[i+1:]]
	}
	return nil
}

// parseRoute checks one route table; nil after any problem.
func parseRoute(t table) *route {
	before := len(*t.Errs)
	t.Unknown(routeKeys)
	r := &route{name: t.Where,
		addresses:   t.addresses("addresses"),
		domains:     t.domains("domains"),
		url:         t.url("url"),
		secret:      t.secret(),
		also:        t.mode("mode"),
		timeout:     t.Duration("timeout", 10*time.Second),
		includeRaw:  t.boolean("include_raw", false),
		maxResponse: t.size("max_response", 4096),
	}
	if len(r.addresses) == 0 && len(r.domains) == 0 {
		t.Fail("addresses", "the route matches no one; give addresses = [\"orders@example.org\"] and/or domains = [\"hooks.example.org\"]")
	}
	tlsConfig := t.tlsConfig("ca_file", r.url)
	if len(*t.Errs) > before {
		return nil
	}
	r.client = newClient(tlsConfig)
	return r
}

// newClient is one route's HTTP client. It follows no redirect (a 3xx
// is the endpoint's answer, see verdictFor) and uses no proxy from the
// environment: the MDA's environment is not the administrator's shell.
func newClient(tlsConfig *tls.Config) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.TLSClientConfig = tlsConfig
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// table reads one TOML table, recording problems instead of stopping at
// the first. where prefixes keys inside an array of tables ("routes[2]").
type table struct{ sdk.ConfigTable }

// list reads an array of strings, lower-cased and trimmed.
func (t table) list(key, example string) []string {
	v, ok := t.M[key]
	if !ok {
		return nil
	}
	items, ok := v.([]any)
	var out []string
	for _, it := range items {
		s, isStr := it.(string)
		ok = ok && isStr
		out = append(out, strings.ToLower(strings.TrimSpace(s)))
	}
	if !ok {
		t.Fail(key, "got %s, want an array of strings, e.g. %s = [%q]", sdk.Describe(v), key, example)
		return nil
	}
	return out
}

var domainRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$`)

func (t table) addresses(key string) []string {
	var out []string
	for _, a := range t.list(key, "orders@example.org") {
		local, domain, ok := strings.Cut(a, "@")
		if !ok || local == "" || strings.ContainsAny(local, " <>\"") || !domainRe.MatchString(domain) {
			t.Fail(key, "%q is not an address like \"orders@example.org\"", a)
			continue
		}
		out = append(out, a)
	}
	return out
}

func (t table) domains(key string) []string {
	var out []string
	for _, d := range t.list(key, "hooks.example.org") {
		d = strings.TrimSuffix(d, ".")
		if !domainRe.MatchString(d) {
			t.Fail(key, "%q is not a domain like \"hooks.example.org\" (no @)", d)
			continue
		}
		out = append(out, d)
	}
	return out
}

func (t table) url(key string) string {
	s := t.String(key, "")
	u, err := url.Parse(s)
	switch {
	case s == "":
		t.Fail(key, "missing; give the endpoint, e.g. url = \"https://app.example.org/hooks/mail\"")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		t.Fail(key, "%q is not an http:// or https:// URL with a host", s)
	case u.Fragment != "":
		t.Fail(key, "%q has a #fragment, which is never sent; remove it", s)
	}
	return s
}

// secret reads secret or secret_file; exactly one must give at least
// minSecret bytes.
func (t table) secret() []byte {
	s, file := t.String("secret", ""), t.String("secret_file", "")
	hint := "generate one with `openssl rand -hex 32`"
	switch {
	case s != "" && file != "":
		t.Fail("secret", "both secret and secret_file are given; keep one")
		return nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fail("secret_file", "%v; the file must be readable by the MDA's user", err)
			return nil
		}
		s = strings.TrimRight(string(b), "\r\n")
		if len(s) < minSecret {
			t.Fail("secret_file", "%s holds %d bytes, want at least %d; %s", file, len(s), minSecret, hint)
			return nil
		}
	case s == "":
		t.Fail("secret", "missing: requests must be signed; give secret or secret_file (%s)", hint)
		return nil
	case len(s) < minSecret:
		t.Fail("secret", "%d bytes, want at least %d; %s", len(s), minSecret, hint)
		return nil
	}
	return []byte(s)
}

// mode reads "instead" (false) or "also" (true).
func (t table) mode(key string) bool {
	switch m := t.String(key, ""); m {
	case "", "instead":
		return false
	case "also":
		return true
	default:
		t.Fail(key, "%q is not \"instead\" (no Maildir copy) or \"also\" (a Maildir copy too)", m)
		return false
	}
}

func (t table) boolean(key string, def bool) bool {
	v, ok := t.M[key]
	if !ok {
		return def
	}
	b, ok := v.(bool)
	if !ok {
		t.Fail(key, "got %s, want true or false (no quotes)", sdk.Describe(v))
	}
	return b
}

// size reads a positive byte count of at most 1 MiB.
func (t table) size(key string, def int64) int64 {
	v, ok := t.M[key]
	if !ok {
		return def
	}
	n, isInt := v.(int64)
	if !isInt || n <= 0 || n > 1<<20 {
		t.Fail(key, "got %s, want a number of bytes from 1 to 1048576, e.g. %s = %d", sdk.Describe(v), key, def)
		return def
	}
	return n
}

// tlsConfig verifies https endpoints against the system's roots plus
// the certificates in ca_file, when given.
func (t table) tlsConfig(key, endpoint string) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	file := t.String(key, "")
	if file == "" {
		return c
	}
	if !strings.HasPrefix(endpoint, "https://") {
		t.Fail(key, "only counts for an https:// url; remove it or make url https")
		return c
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		t.Fail(key, "%v; give a PEM file of CA certificates readable by the MDA's user", err)
		return c
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		t.Fail(key, "%s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", file)
	}
	c.RootCAs = pool
	return c
}
