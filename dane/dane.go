// Package dane checks a TLS server's certificate against its TLSA
// records (RFC 6698), as SMTP uses them (RFC 7672): only the usages
// DANE-TA(2) and DANE-EE(3) count for SMTP, with selectors Cert(0) and
// SPKI(1) and matchings Full(0), SHA2-256(1) and SHA2-512(2).
//
// Implemented: RFC 7672 §3.1 (DANE-EE: the leaf matches, no name or
// expiry checks, §3.1.1; DANE-TA: a certificate of the presented chain
// matches and the leaf chains to it and is valid for the host name,
// §3.1.2; PKIX-TA(0) and PKIX-EE(1) are unusable, §3.1.3); §2.2's
// "TLSA records but none usable": TLS is still mandatory, any
// certificate. Left out: a trust anchor published only in DNS (a
// DANE-TA(2) key not in the server's chain; RFC 7672 §3.1.2 says
// servers SHOULD include it), and name checks against the TLSA base
// domain when the MX host is a CNAME alias.
//
// It never looks anything up: the MTA finds the records, and decides
// whether they are DNSSEC-validated, before asking Verify.
package dane

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Usages, selectors and matching types (RFC 6698 §2.1, RFC 7218 names).
const (
	UsageDANETA = 2
	UsageDANEEE = 3

	SelectorCert = 0
	SelectorSPKI = 1

	MatchFull   = 0
	MatchSHA256 = 1
	MatchSHA512 = 2
)

// Record is one TLSA record.
type Record struct {
	Usage, Selector, MatchingType uint8
	Data                          []byte
}

// ParseHex makes a Record from the presentation form's fields.
func ParseHex(usage, selector, matching uint8, data string) (Record, error) {
	b, err := hex.DecodeString(data)
	if err != nil {
		return Record{}, fmt.Errorf("dane: TLSA data %q: %w", data, err)
	}
	return Record{Usage: usage, Selector: selector, MatchingType: matching, Data: b}, nil
}

// Usable returns the records SMTP may use (RFC 7672 §3.1).
func Usable(recs []Record) []Record {
	var out []Record
	for _, r := range recs {
		if (r.Usage == UsageDANETA || r.Usage == UsageDANEEE) && r.Selector <= SelectorSPKI && r.MatchingType <= MatchSHA512 {
			out = append(out, r)
		}
	}
	return out
}

// Verify checks chain, the server's certificates leaf first, for host
// against usable: nil when a DANE-EE record matches the leaf, or a
// DANE-TA record matches a certificate of the chain that the leaf,
// valid for host at now, chains up to. With no usable record any chain
// passes (§2.2: encryption without authentication).
func Verify(usable []Record, chain []*x509.Certificate, host string, now time.Time) error {
	if len(usable) == 0 {
		return nil
	}
	if len(chain) == 0 {
		return errors.New("dane: no certificate")
	}
	for _, r := range usable {
		if r.Usage == UsageDANEEE && r.matches(chain[0]) {
			return nil
		}
	}
	for _, r := range usable {
		if r.Usage != UsageDANETA {
			continue
		}
		for _, anchor := range chain[1:] {
			if r.matches(anchor) && chainsTo(chain, anchor, host, now) {
				return nil
			}
		}
	}
	return fmt.Errorf("dane: no TLSA record of %s matches its certificate (%d records)", host, len(usable))
}

// chainsTo reports whether chain's leaf is valid for host at now and
// chains to anchor through chain's other certificates.
func chainsTo(chain []*x509.Certificate, anchor *x509.Certificate, host string, now time.Time) bool {
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(anchor)
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{DNSName: strings.TrimSuffix(host, "."), Roots: roots,
		Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err == nil
}

// matches reports whether cert is the one r names.
func (r Record) matches(cert *x509.Certificate) bool {
	data := cert.Raw
	if r.Selector == SelectorSPKI {
		data = cert.RawSubjectPublicKeyInfo
	}
	switch r.MatchingType {
	case MatchSHA256:
		sum := sha256.Sum256(data)
		data = sum[:]
	case MatchSHA512:
		sum := sha512.Sum512(data)
		data = sum[:]
	}
	return bytes.Equal(data, r.Data)
}
