package dane

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// cert makes a certificate for name signed by parent (nil: self-signed).
func cert(t *testing.T, name string, ca bool, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, notAfter time.Time) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: notAfter, IsCA: ca, BasicConstraintsValid: true}
	if ca {
		tmpl.KeyUsage = x509.KeyUsageCertSign
	} else {
		tmpl.DNSNames = []string{name}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func TestVerifyDANEEE(t *testing.T) {
	leaf, _ := cert(t, "mx.example.org", false, nil, nil, now.Add(-time.Minute)) // expired: EE ignores it
	spki256 := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	cert512 := sha512.Sum512(leaf.Raw)
	other, _ := cert(t, "mx.example.org", false, nil, nil, now.Add(time.Hour))
	for name, tc := range map[string]struct {
		recs []Record
		ok   bool
	}{
		"3 1 1":              {[]Record{{3, 1, 1, spki256[:]}}, true},
		"3 0 2":              {[]Record{{3, 0, 2, cert512[:]}}, true},
		"3 0 0":              {[]Record{{3, 0, 0, leaf.Raw}}, true},
		"one of two matches": {[]Record{{3, 1, 1, make([]byte, 32)}, {3, 1, 1, spki256[:]}}, true},
		"no match":           {[]Record{{3, 1, 1, make([]byte, 32)}}, false},
		"none usable":        {nil, true}, // TLS without authentication
	} {
		err := Verify(Usable(tc.recs), []*x509.Certificate{leaf}, "any.name.example", now)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", name, err)
		}
	}
	if Verify([]Record{{3, 1, 1, spki256[:]}}, []*x509.Certificate{other}, "mx.example.org", now) == nil {
		t.Error("another key passed")
	}
}

func TestVerifyDANETA(t *testing.T) {
	ca, caKey := cert(t, "Example CA", true, nil, nil, now.Add(time.Hour))
	leaf, _ := cert(t, "mx.example.org", false, ca, caKey, now.Add(time.Hour))
	caSPKI := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
	ta := []Record{{2, 1, 1, caSPKI[:]}}
	chain := []*x509.Certificate{leaf, ca}
	if err := Verify(ta, chain, "mx.example.org", now); err != nil {
		t.Errorf("DANE-TA with the anchor in the chain: %v", err)
	}
	if Verify(ta, chain, "other.example.org", now) == nil {
		t.Error("DANE-TA must check the name")
	}
	if Verify(ta, chain, "mx.example.org", now.Add(2*time.Hour)) == nil {
		t.Error("DANE-TA must check expiry")
	}
	if Verify(ta, []*x509.Certificate{leaf}, "mx.example.org", now) == nil {
		t.Error("DANE-TA with the anchor left out of the chain passed (not supported)")
	}
	leafSPKI := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	if Verify([]Record{{2, 1, 1, leafSPKI[:]}}, chain, "mx.example.org", now) == nil {
		t.Error("a DANE-TA record naming the leaf passed")
	}
}

func TestUsable(t *testing.T) {
	recs := []Record{{0, 1, 1, nil}, {1, 1, 1, nil}, {2, 1, 1, nil}, {3, 0, 2, nil}, {3, 2, 1, nil}, {3, 1, 3, nil}, {4, 1, 1, nil}}
	if got := Usable(recs); len(got) != 2 || got[0].Usage != 2 || got[1].Usage != 3 {
		t.Errorf("Usable = %+v", got)
	}
	if r, err := ParseHex(3, 1, 1, "00ff"); err != nil || len(r.Data) != 2 {
		t.Errorf("ParseHex: %+v %v", r, err)
	}
	if _, err := ParseHex(3, 1, 1, "xyz"); err == nil {
		t.Error("bad hex accepted")
	}
}
