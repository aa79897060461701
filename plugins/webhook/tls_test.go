package main

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"postline/plugins/sdk"
)

// An https endpoint is verified: against ca_file it is delivered to;
// with a certificate the system does not trust, the copy is deferred
// ("TLS failed"), never sent unverified.
func TestHTTPSVerified(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	f := configured(t, srv.URL, map[string]any{"addresses": addrs("orders@example.org"), "ca_file": ca})
	if v := deliver(t, f, delivery("orders@example.org", simpleMsg)); !v.Discards() {
		t.Errorf("with ca_file: %+v", v)
	}
	f = configured(t, srv.URL, map[string]any{"addresses": addrs("orders@example.org")})
	want := sdk.Tempfail(451, "4.4.1", "webhook endpoint not reached: TLS failed")
	if v := deliver(t, f, delivery("orders@example.org", simpleMsg)); !reflect.DeepEqual(v, want) {
		t.Errorf("without ca_file: %+v", v)
	}
}
