package config

import (
	"strings"
	"testing"
)

func TestLineOfKey(t *testing.T) {
	src := `# comment mentioning hostname = "x"
hostname = "a"
"state_dir" = "b"

[mta]   # the transfer agent
listen = ["x"]
  local_retry_max="1m"

[[ignored.array]]
listen = 1

[mda]
mail_root = "c"
`
	tests := []struct {
		key  string
		want int
	}{
		{"hostname", 2},
		{"state_dir", 3},
		{"mta.listen", 6},
		{"mta.local_retry_max", 7},
		{"mda.mail_root", 13},
		{"listen", 0},          // only set inside tables
		{"mda.listen", 0},      // not in this table
		{"mta.remote_port", 0}, // left out: a default applies
		{"host", 0},
	}
	for _, tt := range tests {
		if got := lineOfKey(src, tt.key); got != tt.want {
			t.Errorf("lineOfKey(%q) = %d, want %d", tt.key, got, tt.want)
		}
	}
}

// loadErr loads src and returns the error text, which must exist.
func loadErr(t *testing.T, src string) (path, msg string) {
	t.Helper()
	path = writeConfig(t, src)
	_, err := Load(path)
	if err == nil {
		t.Fatalf("Load accepted:\n%s", src)
	}
	return path, err.Error()
}

func TestUnknownKeys(t *testing.T) {
	path, msg := loadErr(t, minimal+`smtp_timout = "5m"
[mta]
listen = ["127.0.0.1:25"]
local_retry = "1m"
[tls]
crt = "x"
`)
	for _, want := range []string{
		path + `:3: unknown key "smtp_timout"`,
		"known at the top level: ",
		path + `:6: unknown key "local_retry": remove it or use one of the keys known in [mta]: delay_warning, dns_server, dnssec_resolver, hop_limit, listen, local_retry_max, max_connections_per_domain, max_deliveries, metrics, mta_sts_port, queue_lifetime, relayhost, relayhost_auth, relayhost_tls, remote_port, retry_max, retry_min, route, srs, srs_domain, tls_report_period, tls_roots, user`,
		path + `:8: unknown key "crt"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

// A whole unknown table is reported at its [header] line; there is no
// line 0 in a file.
func TestUnknownTable(t *testing.T) {
	path, msg := loadErr(t, minimal+"\n[smtp]\nport = 25\n")
	if !strings.Contains(msg, path+`:4: unknown key "smtp"`) {
		t.Errorf("error should name the table at its line 4:\n%s", msg)
	}
	if strings.Contains(msg, path+":0:") {
		t.Errorf("error gives line 0:\n%s", msg)
	}
}

func TestInvalidValues(t *testing.T) {
	tests := []struct{ src, want string }{
		{minimal + "[mta]\nremote_port = 0\n", ":4: mta.remote_port: 0 is not a TCP port"},
		{minimal + "[mta]\nlocal_retry_max = \"500ms\"\n", `:4: mta.local_retry_max: must be at least "1s"`},
		{minimal + "[mta]\ndelay_warning = \"-1h\"\n", `:4: mta.delay_warning: must be a duration such as "4h" (the default), or "0" for no delay warnings`},
		{minimal + "[mta]\ndelay_warning = \"soon\"\n", `:4:`},
		{minimal + "[mta]\nsrs_domain = \"elsewhere.example\"\n", `:4: mta.srs_domain: "elsewhere.example" is not one of domains`},
		{minimal + "[mta]\ndnssec_resolver = \"10.0.0.53\"\n", `:4: mta.dnssec_resolver: "10.0.0.53" is not host:port`},
		{minimal + "[mta]\nmta_sts_port = 0\n", `:4: mta.mta_sts_port: 0 is not a TCP port`},
		{minimal + "smtp_timeout = \"5 minutes\"\n", `:3:`},
		{minimal + "log_level = \"verbose\"\n", `:3: log_level: "verbose" is not one of`},
		{minimal + "max_message_size = \"big\"\n", `:3: max_message_size:`},
		{minimal + "[msa]\nsubmission = [\"587\"]\n", `:4: msa.submission: "587" is not host:port`},
		{minimal + "[tls]\ncert = \"c.pem\"\n", `:4: tls.cert: set both`},
		{"domains = [\"example.test\"]\n", `: hostname: must be`},
		{`hostname = "mx"` + "\n", `: domains: list at least one`},
		{minimal + "hostname = \"dup\"\n", `:3:`},
		{minimal + "recipient_delimiter = \"#\"\n", `:3: recipient_delimiter: "#": give one of ["+" "-" "_" "="], or "" for none`},
		{minimal + "recipient_delimiter = \"++\"\n", `:3: recipient_delimiter: "++": give one of`},
	}
	for _, tt := range tests {
		path, msg := loadErr(t, tt.src)
		if !strings.Contains(msg, path+tt.want) {
			t.Errorf("error %q lacks %q", msg, path+tt.want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("/nonexistent/postline.toml")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/postline.toml") || !strings.Contains(err.Error(), "-c") {
		t.Errorf("err = %v", err)
	}
}
