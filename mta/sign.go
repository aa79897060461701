package mta

import (
	"bytes"
	"fmt"
	"io"
	"net/mail"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/rs/zerolog"

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

// maxReply bounds a reply from the MDA that is read whole to be signed:
// an auto-reply is small (plugins/host bounds what a plugin sends to 1 MiB).
const maxReply = 1 << 20

// signReply DKIM-signs an auto-reply the MDA hands over (a Sieve vacation
// reply, from <>), as signOwn does a bounce: it passed none of the MSA's
// plugins, so without this a domain with DMARC p=reject would have its
// own replies refused. Read whole, up to maxReply; past that, or without
// a key, it goes on as it came.
func (s *session) signReply(r io.Reader, log zerolog.Logger) io.Reader {
	msg, err := io.ReadAll(io.LimitReader(r, maxReply+1))
	if err != nil {
		return io.MultiReader(bytes.NewReader(msg), failing{err})
	}
	rest := io.MultiReader(bytes.NewReader(msg), r)
	if len(msg) > maxReply {
		return rest
	}
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return rest
	}
	from, err := mail.ParseAddress(m.Header.Get("From"))
	if err != nil {
		return rest
	}
	_, domain, _ := strings.Cut(from.Address, "@")
	signed, err := signOwn(s.b.Config, strings.ToLower(domain), msg)
	if err != nil {
		log.Warn().Err(err).Msg("reply not signed")
	}
	return bytes.NewReader(signed)
}

// failing is a reader that fails with err: a read error must reach the
// store, which then refuses the message rather than keep part of it.
type failing struct{ err error }

func (f failing) Read([]byte) (int, error) { return 0, f.err }
