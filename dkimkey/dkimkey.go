// Package dkimkey makes, reads and publishes DKIM signing keys: the PEM
// files that `postline setup` and `postline dkim keygen` write and the
// dkim-sign plugin reads, and the key records (RFC 6376 §3.6.1) that go
// into the DNS at SELECTOR._domainkey.DOMAIN, which `postline dns check`
// compares with the keys on disk.
//
// It never signs or verifies a message: that is the plugin's work, with
// go-msgauth.
package dkimkey

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Algorithms a key may be made with: RSA (2048 bits, what every
// verifier knows) or Ed25519 (RFC 8463, small, not yet verified by all).
const (
	RSA     = "rsa"
	Ed25519 = "ed25519"
)

// rsaBits is the size of a new RSA key: RFC 8301 requires at least 1024
// and recommends 2048, which fits a TXT record in two strings.
const rsaBits = 2048

// Generate makes a new key for alg (RSA or Ed25519).
func Generate(alg string) (crypto.Signer, error) {
	switch alg {
	case RSA:
		return rsa.GenerateKey(rand.Reader, rsaBits)
	case Ed25519:
		_, key, err := ed25519.GenerateKey(rand.Reader)
		return key, err
	}
	return nil, fmt.Errorf("dkimkey: unknown algorithm %q; use %q or %q", alg, RSA, Ed25519)
}

// DefaultSelector is the selector of a key made on day now: a new key
// on another day gets a new name beside the old one, which is how keys
// are rotated (publish the new one, switch, then remove the old).
func DefaultSelector(now time.Time) string { return "s" + now.UTC().Format("20060102") }

// selector is a selector's syntax (RFC 6376 §3.1): dot-separated DNS
// labels of letters, digits and inner hyphens.
var selector = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// ValidSelector reports whether s may name a key.
func ValidSelector(s string) bool { return selector.MatchString(s) }

// Path is where the key of domain and selector lives below dir.
func Path(dir, domain, selector string) string {
	return filepath.Join(dir, domain+"."+selector+".pem")
}

// Write stores key at path as PKCS#8 PEM with mode 0640 and group gid
// (-1 keeps the caller's): the plugin that reads it runs as that group's
// user. An existing file is never replaced.
func Write(path string, key crypto.Signer, gid int) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("dkimkey: encode key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("dkimkey: %w", err)
	}
	err = pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err == nil && gid >= 0 {
		err = f.Chown(-1, gid)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("dkimkey: write %s: %w", path, err)
	}
	return nil
}

// Read reads an RSA or Ed25519 private key, PKCS#8 or PKCS#1 PEM.
func Read(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s holds no PEM block", path)
	}
	if block.Type == "RSA PRIVATE KEY" {
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("%s: a %T key; DKIM signs with RSA or Ed25519 (RFC 8463)", path, k)
}

// Record is the key record that publishes key's public half: "v=DKIM1;
// k=rsa; p=..." with the SubjectPublicKeyInfo for RSA (RFC 6376 §3.6.1),
// the bare 32-octet key for Ed25519 (RFC 8463 §4.2).
func Record(key crypto.Signer) (string, error) {
	alg, pub, err := publicKey(key.Public())
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("v=DKIM1; k=%s; p=%s", alg, base64.StdEncoding.EncodeToString(pub)), nil
}

func publicKey(pub crypto.PublicKey) (alg string, der []byte, err error) {
	switch pub := pub.(type) {
	case ed25519.PublicKey:
		return Ed25519, pub, nil
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		return RSA, der, err
	}
	return "", nil, fmt.Errorf("dkimkey: a %T key; DKIM signs with RSA or Ed25519", pub)
}

// Matches reports whether the published key record txt (its strings
// joined) holds key's public half; when not, the error says what is
// wrong with it.
func Matches(txt string, key crypto.Signer) error {
	tags := parseTags(txt)
	if v, ok := tags["v"]; ok && v != "DKIM1" {
		return fmt.Errorf("v=%s, not DKIM1", v)
	}
	p, ok := tags["p"]
	if !ok || p == "" {
		return errors.New("no public key (p= missing or empty: a revoked key)")
	}
	alg, want, err := publicKey(key.Public())
	if err != nil {
		return err
	}
	if k := tags["k"]; k != alg && !(k == "" && alg == RSA) { // k defaults to rsa
		return fmt.Errorf("k=%s, the key on disk is %s", k, alg)
	}
	got, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(p), ""))
	if err != nil {
		return fmt.Errorf("p= is not base64: %v", err)
	}
	if !bytes.Equal(got, want) {
		return errors.New("p= is another key than the one on disk")
	}
	return nil
}

// parseTags splits a tag=value list (RFC 6376 §3.2).
func parseTags(txt string) map[string]string {
	tags := map[string]string{}
	for _, part := range strings.Split(txt, ";") {
		name, value, ok := strings.Cut(part, "=")
		if ok {
			tags[strings.TrimSpace(name)] = strings.TrimSpace(value)
		}
	}
	return tags
}
