// Command dkim-sign is postline's bundled DKIM signer (RFC 6376), built
// as bin/postline-plugin-dkim-sign and run on the MSA's data hook: each
// submission whose From: domain has a key gets a DKIM-Signature field,
// so receivers can check it came from here (and DMARC can pass). Enable
// it in postline.toml, one keys table per signing domain:
//
//	[[plugins]]
//	name = "dkim-sign"
//	daemon = "msa"
//	hooks = ["data"]
//	[[plugins.config.keys]]
//	domain = "example.org"
//	selector = "mail"          # publish the key at mail._domainkey.example.org
//	key_file = "/etc/postline/dkim/example.org.pem"   # PKCS#8 or PKCS#1 PEM, RSA or Ed25519
//
// Header and body are canonicalized "relaxed", which survives the
// refolding and whitespace changes relays make; the signed fields are the
// usual ones present in the message (From is always signed).
//
// It never writes to stdout: go-plugin's handshake travels there.
package main

import (
	"context"
	"crypto"
	"fmt"
	"io"
	"net/mail"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	"postline/address"
	"postline/plugins/sdk"
)

// signedFields are the fields signed when present, as most signers do:
// those a reader sees or that shape the body.
var signedFields = []string{"From", "Reply-To", "Subject", "Date", "To", "Cc", "Message-ID",
	"In-Reply-To", "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
	"List-Id", "List-Unsubscribe", "List-Unsubscribe-Post"}

// key is one signing domain's selector and private key.
type key struct {
	selector string
	signer   crypto.Signer
}

type filter struct{ keys map[string]key }

// Configure loads every key; a key that cannot be read stops the MSA.
func (f *filter) Configure(cfg map[string]any) error {
	keys, err := parseKeys(cfg)
	if err != nil {
		return err
	}
	f.keys = keys
	return nil
}

func (f *filter) Data(_ context.Context, m *sdk.Message) (sdk.Verdict, error) {
	domain := fromDomain(m.Header.Get("From"))
	k, ok := f.keys[domain]
	if !ok {
		return sdk.Continue(), nil
	}
	value, err := sign(m, domain, k)
	if err != nil {
		return sdk.Verdict{}, fmt.Errorf("sign for %s: %w", domain, err)
	}
	sdk.Log().Debug("signed", "queue_id", m.Conn.QueueID, "domain", domain, "selector", k.selector)
	return sdk.Continue().With(sdk.Prepend("DKIM-Signature", value)), nil
}

// sign computes the signature of the whole message and returns the
// DKIM-Signature field's value on one line.
func sign(m *sdk.Message, domain string, k key) (string, error) {
	var fields []string
	for _, name := range signedFields {
		if m.Header.Has(name) {
			fields = append(fields, name)
		}
	}
	s, err := dkim.NewSigner(&dkim.SignOptions{Domain: domain, Selector: k.selector, Signer: k.signer,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: fields})
	if err != nil {
		return "", err
	}
	if _, err := s.Write(m.RawHeader); err != nil {
		s.Close()
		return "", err
	}
	if _, err := io.Copy(s, m.Body); err != nil {
		s.Close()
		return "", err
	}
	if err := s.Close(); err != nil {
		return "", err
	}
	field := s.Signature()
	value := strings.TrimPrefix(field, "DKIM-Signature:")
	// One line: relaxed header canonicalization makes the folding moot.
	value = strings.NewReplacer("\r\n ", " ", "\r\n\t", " ", "\r\n", "").Replace(value)
	return strings.TrimSpace(value), nil
}

// fromDomain is the domain of the From field's first address,
// normalized as local domains are; "" when there is none.
func fromDomain(from string) string {
	list, err := mail.ParseAddressList(from)
	if err != nil || len(list) == 0 {
		return ""
	}
	a, err := address.Parse(list[0].Address)
	if err != nil {
		return ""
	}
	return a.Domain
}

func main() { sdk.Serve(&filter{}) }
