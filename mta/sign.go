package mta

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	"postline/config"
	"postline/dkimkey"
)

// signOwn DKIM-signs msg, a message postline wrote itself (a bounce),
// with the key of domain, the From's, or of the nearest parent domain
// that has one, so that DMARC's relaxed alignment holds (RFC 7489
// §3.1.1): MAILER-DAEMON@mail.example.org signed for example.org. With
// no key, msg comes back as it is.
func signOwn(cfg *config.Config, domain string, msg []byte) ([]byte, error) {
	k, ok := keyFor(cfg.DKIMKeys(), domain)
	if !ok {
		return msg, nil
	}
	signer, err := dkimkey.Read(k.KeyFile)
	if err != nil {
		return msg, fmt.Errorf("mta: DKIM key of %s: %w", k.Domain, err)
	}
	var out bytes.Buffer
	err = dkim.Sign(&out, bytes.NewReader(msg), &dkim.SignOptions{Domain: k.Domain, Selector: k.Selector, Signer: signer,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed})
	if err != nil {
		return msg, fmt.Errorf("mta: sign for %s: %w", k.Domain, err)
	}
	return out.Bytes(), nil
}

// keyFor finds the key of domain or of its nearest parent.
func keyFor(keys []config.DKIMKey, domain string) (config.DKIMKey, bool) {
	for d := domain; strings.Contains(d, "."); _, d, _ = strings.Cut(d, ".") {
		for _, k := range keys {
			if k.Domain == d {
				return k, true
			}
		}
	}
	return config.DKIMKey{}, false
}
