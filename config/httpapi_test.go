package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestHTTPPlainOnlyOnLoopback(t *testing.T) {
	c, err := Load(writeConfig(t, minimal+"[msa]\nhttp = [\"0.0.0.0:443\"]\nhttp_plain = [\"127.0.0.1:8025\", \"[::1]:8025\"]\n"))
	if err != nil {
		t.Fatalf("loopback plaintext and HTTPS anywhere refused: %v", err)
	}
	if len(c.MSA.HTTP) != 1 || len(c.MSA.HTTPPlain) != 2 {
		t.Errorf("listeners: %q, %q", c.MSA.HTTP, c.MSA.HTTPPlain)
	}
	path := writeConfig(t, minimal+"[msa]\nhttp_plain = [\"0.0.0.0:8025\"]\n")
	_, err = Load(path)
	if err == nil {
		t.Fatal("a plaintext listener on every address was accepted")
	}
	// file:line and the fix
	if want := path + ":4: msa.http_plain"; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "move it to msa.http") {
		t.Errorf("error %q lacks %q or the fix", err, want)
	}
}

func TestTokensFileBesideUsersFile(t *testing.T) {
	path := writeConfig(t, minimal+"users_file = \"etc/users\"\n")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(filepath.Dir(path), "etc", "tokens"); c.MSA.TokensFile != want {
		t.Errorf("tokens_file %s, want %s", c.MSA.TokensFile, want)
	}
	c, err = Load(writeConfig(t, minimal+"[msa]\ntokens_file = \"api-tokens\"\n"))
	if err != nil || filepath.Base(c.MSA.TokensFile) != "api-tokens" || !filepath.IsAbs(c.MSA.TokensFile) {
		t.Errorf("tokens_file set: %v, %v", c, err)
	}
}
