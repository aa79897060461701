package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	c, err := parseConfig(map[string]any{"routes": []any{map[string]any{
		"addresses": addrs("orders@example.org"), "url": "https://app.example.org/hook", "secret": testSecret}}})
	if err != nil {
		t.Fatal(err)
	}
	r := c.routes[0]
	if r.also || r.includeRaw || r.timeout != 10*time.Second || r.maxResponse != 4096 || string(r.secret) != testSecret {
		t.Errorf("defaults: %+v", r)
	}
}

func TestConfigSecretFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(file, []byte(testSecret+"\n"), 0o600)
	c, err := parseConfig(map[string]any{"routes": []any{map[string]any{
		"domains": addrs("hooks.example.org"), "url": "http://127.0.0.1:9/hook", "secret_file": file, "mode": "also"}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := c.routes[0]; string(r.secret) != testSecret || !r.also {
		t.Errorf("%+v", r)
	}
}

// Each mistake is reported, naming the key and the fix, all at once.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("abc\n"), 0o600)
	notPEM := filepath.Join(dir, "ca.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	ok := map[string]any{"addresses": addrs("orders@example.org"), "url": "https://a.example/h", "secret": testSecret}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range ok {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	for _, tc := range []struct {
		name  string
		table map[string]any
		want  string
	}{
		{"no routes", map[string]any{}, "webhook: routes: none given; add a [[plugins.config.routes]]"},
		{"routes not tables", map[string]any{"routes": "x"}, "webhook: routes: got string \"x\", want [[plugins.config.routes]] tables"},
		{"unknown top key", map[string]any{"routes": []any{ok}, "route": 1}, "webhook: route: unknown key; remove it or use one of routes"},
		{"unknown route key", map[string]any{"routes": []any{with("secrets", "x")}}, "webhook: routes[0].secrets: unknown key"},
		{"missing secret", map[string]any{"routes": []any{with("secret", nil)}}, "webhook: routes[0].secret: missing: requests must be signed; give secret or secret_file"},
		{"short secret", map[string]any{"routes": []any{with("secret", "abc")}}, "webhook: routes[0].secret: 3 bytes, want at least 16; generate one with `openssl rand -hex 32`"},
		{"both secrets", map[string]any{"routes": []any{with("secret_file", short)}}, "webhook: routes[0].secret: both secret and secret_file are given; keep one"},
		{"short secret file", map[string]any{"routes": []any{with("secret", nil, "secret_file", short)}}, "holds 3 bytes, want at least 16"},
		{"missing secret file", map[string]any{"routes": []any{with("secret", nil, "secret_file", dir+"/none")}}, "webhook: routes[0].secret_file: open " + dir + "/none: no such file or directory; the file must be readable"},
		{"no url", map[string]any{"routes": []any{with("url", nil)}}, "webhook: routes[0].url: missing; give the endpoint"},
		{"ftp url", map[string]any{"routes": []any{with("url", "ftp://a.example/")}}, "webhook: routes[0].url: \"ftp://a.example/\" is not an http:// or https:// URL with a host"},
		{"matches no one", map[string]any{"routes": []any{with("addresses", nil)}}, "webhook: routes[0].addresses: the route matches no one"},
		{"bad address", map[string]any{"routes": []any{with("addresses", addrs("orders"))}}, "webhook: routes[0].addresses: \"orders\" is not an address like \"orders@example.org\""},
		{"bad domain", map[string]any{"routes": []any{with("domains", addrs("@hooks.example.org"))}}, "webhook: routes[0].domains: \"@hooks.example.org\" is not a domain"},
		{"addresses not a list", map[string]any{"routes": []any{with("addresses", "orders@example.org")}}, "webhook: routes[0].addresses: got string \"orders@example.org\", want an array of strings"},
		{"bad mode", map[string]any{"routes": []any{with("mode", "both")}}, "webhook: routes[0].mode: \"both\" is not \"instead\" (no Maildir copy) or \"also\""},
		{"bad timeout", map[string]any{"routes": []any{with("timeout", "10")}}, "webhook: routes[0].timeout: got string \"10\", want a positive duration such as timeout = \"10s\""},
		{"bad include_raw", map[string]any{"routes": []any{with("include_raw", "yes")}}, "webhook: routes[0].include_raw: got string \"yes\", want true or false"},
		{"bad max_response", map[string]any{"routes": []any{with("max_response", int64(0))}}, "webhook: routes[0].max_response: got number 0, want a number of bytes from 1 to 1048576"},
		{"ca_file for http", map[string]any{"routes": []any{with("url", "http://a.example/", "ca_file", notPEM)}}, "webhook: routes[0].ca_file: only counts for an https:// url"},
		{"ca_file not PEM", map[string]any{"routes": []any{with("ca_file", notPEM)}}, "holds no PEM certificate"},
		{"address twice", map[string]any{"routes": []any{ok, with("addresses", addrs("Orders@example.org"))}}, "webhook: routes[1].addresses: \"orders@example.org\" is already routed by routes[0]; list it in one route only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(tc.table)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}

// Several mistakes come back together, so one `postline check` shows all.
func TestConfigErrorsTogether(t *testing.T) {
	_, err := parseConfig(map[string]any{"routes": []any{map[string]any{"addresses": addrs("a@b.example"), "url": "x", "mode": "y"}}})
	if err == nil || strings.Count(err.Error(), "\n") != 2 {
		t.Errorf("want three lines, got %v", err)
	}
}

// An unconfigured filter routes nothing.
func TestUnconfiguredContinues(t *testing.T) {
	v := deliver(t, newFilter(), delivery("orders@example.org", simpleMsg))
	if v.Refuses() || v.Discards() {
		t.Errorf("%+v", v)
	}
}
