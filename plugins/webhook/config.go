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
	"slices"
	"strings"
	"time"
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
	t := table{m: raw, errs: &errs}
	t.unknown(topKeys)
	c := &config{byAddress: map[string]*route{}, byDomain: map[string]*route{}}
	items, ok := raw["routes"].([]any)
	switch {
	case raw["routes"] == nil || ok && len(items) == 0:
		t.fail("routes", "none given; add a [[plugins.config.routes]] table with addresses or domains, url and secret")
	case !ok:
		t.fail("routes", "got %s, want [[plugins.config.routes]] tables", describe(raw["routes"]))
	}
	for i, it := range items {
		where := fmt.Sprintf("routes[%d]", i)
		m, ok := it.(map[string]any)
		if !ok {
			t.fail(where, "got %s, want a table written [[plugins.config.routes]]", describe(it))
			continue
		}
		if r := parseRoute(table{where: where, m: m, errs: &errs}); r != nil {
			c.add(r, table{where: where, m: m, errs: &errs})
		}
	}
	return c, errors.Join(errs...)
}

// add files r under its addresses and domains; each may belong to one
// route only, or which one posts would depend on the order.
func (c *config) add(r *route, t table) {
	for _, a := range r.addresses {
		if other := c.byAddress[a]; other != nil {
			t.fail("addresses", "%q is already routed by %s; list it in one route only", a, other.name)
		}
		c.byAddress[a] = r
	}
	for _, d := range r.domains {
		if other := c.byDomain[d]; other != nil {
			t.fail("domains", "%q is already routed by %s; list it in one route only", d, other.name)
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
	before := len(*t.errs)
	t.unknown(routeKeys)
	r := &route{name: t.where,
		addresses:   t.addresses("addresses"),
		domains:     t.domains("domains"),
		url:         t.url("url"),
		secret:      t.secret(),
		also:        t.mode("mode"),
		timeout:     t.duration("timeout", 10*time.Second),
		includeRaw:  t.boolean("include_raw", false),
		maxResponse: t.size("max_response", 4096),
	}
	if len(r.addresses) == 0 && len(r.domains) == 0 {
		t.fail("addresses", "the route matches no one; give addresses = [\"orders@example.org\"] and/or domains = [\"hooks.example.org\"]")
	}
	tlsConfig := t.tlsConfig("ca_file", r.url)
	if len(*t.errs) > before {
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
type table struct {
	where string
	m     map[string]any
	errs  *[]error
}

func (t table) fail(key, format string, args ...any) {
	name := key
	if t.where != "" && key != t.where {
		name = t.where + "." + key
	}
	*t.errs = append(*t.errs, fmt.Errorf("webhook: %s: "+format, append([]any{name}, args...)...))
}

// unknown reports keys outside known: most likely a typo.
func (t table) unknown(known []string) {
	var keys []string
	for k := range t.m {
		if !slices.Contains(known, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		t.fail(k, "unknown key; remove it or use one of %s", strings.Join(known, ", "))
	}
}

func (t table) str(key string) string {
	v, ok := t.m[key]
	if !ok {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		t.fail(key, "got %s, want a string in double quotes", describe(v))
	}
	return s
}

// list reads an array of strings, lower-cased and trimmed.
func (t table) list(key, example string) []string {
	v, ok := t.m[key]
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
		t.fail(key, "got %s, want an array of strings, e.g. %s = [%q]", describe(v), key, example)
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
			t.fail(key, "%q is not an address like \"orders@example.org\"", a)
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
			t.fail(key, "%q is not a domain like \"hooks.example.org\" (no @)", d)
			continue
		}
		out = append(out, d)
	}
	return out
}

func (t table) url(key string) string {
	s := t.str(key)
	u, err := url.Parse(s)
	switch {
	case s == "":
		t.fail(key, "missing; give the endpoint, e.g. url = \"https://app.example.org/hooks/mail\"")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		t.fail(key, "%q is not an http:// or https:// URL with a host", s)
	case u.Fragment != "":
		t.fail(key, "%q has a #fragment, which is never sent; remove it", s)
	}
	return s
}

// secret reads secret or secret_file; exactly one must give at least
// minSecret bytes.
func (t table) secret() []byte {
	s, file := t.str("secret"), t.str("secret_file")
	hint := "generate one with `openssl rand -hex 32`"
	switch {
	case s != "" && file != "":
		t.fail("secret", "both secret and secret_file are given; keep one")
		return nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			t.fail("secret_file", "%v; the file must be readable by the MDA's user", err)
			return nil
		}
		s = strings.TrimRight(string(b), "\r\n")
		if len(s) < minSecret {
			t.fail("secret_file", "%s holds %d bytes, want at least %d; %s", file, len(s), minSecret, hint)
			return nil
		}
	case s == "":
		t.fail("secret", "missing: requests must be signed; give secret or secret_file (%s)", hint)
		return nil
	case len(s) < minSecret:
		t.fail("secret", "%d bytes, want at least %d; %s", len(s), minSecret, hint)
		return nil
	}
	return []byte(s)
}

// mode reads "instead" (false) or "also" (true).
func (t table) mode(key string) bool {
	switch m := t.str(key); m {
	case "", "instead":
		return false
	case "also":
		return true
	default:
		t.fail(key, "%q is not \"instead\" (no Maildir copy) or \"also\" (a Maildir copy too)", m)
		return false
	}
}

// duration reads a Go duration string such as "10s" or "500ms".
func (t table) duration(key string, def time.Duration) time.Duration {
	v, ok := t.m[key]
	if !ok {
		return def
	}
	s, _ := v.(string)
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.fail(key, "got %s, want a positive duration such as %s = %q", describe(v), key, def.String())
		return def
	}
	return d
}

func (t table) boolean(key string, def bool) bool {
	v, ok := t.m[key]
	if !ok {
		return def
	}
	b, ok := v.(bool)
	if !ok {
		t.fail(key, "got %s, want true or false (no quotes)", describe(v))
	}
	return b
}

// size reads a positive byte count of at most 1 MiB.
func (t table) size(key string, def int64) int64 {
	v, ok := t.m[key]
	if !ok {
		return def
	}
	n, isInt := v.(int64)
	if !isInt || n <= 0 || n > 1<<20 {
		t.fail(key, "got %s, want a number of bytes from 1 to 1048576, e.g. %s = %d", describe(v), key, def)
		return def
	}
	return n
}

// tlsConfig verifies https endpoints against the system's roots plus
// the certificates in ca_file, when given.
func (t table) tlsConfig(key, endpoint string) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	file := t.str(key)
	if file == "" {
		return c
	}
	if !strings.HasPrefix(endpoint, "https://") {
		t.fail(key, "only counts for an https:// url; remove it or make url https")
		return c
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		t.fail(key, "%v; give a PEM file of CA certificates readable by the MDA's user", err)
		return c
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		t.fail(key, "%s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", file)
	}
	c.RootCAs = pool
	return c
}

// describe names a config value the way the TOML file shows it.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("string %q", v)
	case int64, float64:
		return fmt.Sprintf("number %v", v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case nil:
		return "nothing"
	default:
		return fmt.Sprintf("%T", v)
	}
}
