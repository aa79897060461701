package dnsrecords

import (
	"context"
	"fmt"
	"net"
	"strings"

	"blitiri.com.ar/go/spf"

	"postline/dkimkey"
)

// text checks a TXT record: the one of the name that starts with the
// wanted record's first tag (v=spf1, v=DKIM1, ...).
func (c *Checker) text(ctx context.Context, r Record) (string, error) {
	txts, err := c.Resolver.LookupTXT(ctx, r.Name)
	if err != nil {
		return "", err
	}
	tag, _, _ := strings.Cut(r.Value, ";")
	tag, _, _ = strings.Cut(tag, " ")
	var ours []string
	for _, t := range txts {
		if strings.HasPrefix(strings.ToLower(t), strings.ToLower(tag)) {
			ours = append(ours, t)
		}
	}
	switch {
	case len(ours) == 0 && r.Kind == DKIMKey && len(txts) > 0:
		ours = txts // v= is optional in a key record
	case len(ours) == 0:
		return "", errNone
	case len(ours) > 1:
		// RFC 7208 §4.5, RFC 7489 §6.6.3: two records are an error.
		return "", errWrong{fmt.Sprintf("%d records (%s); keep one", len(ours), strings.Join(ours, " | "))}
	}
	return ours[0], c.textHolds(ctx, r, ours[0])
}

// textHolds checks what a TXT record of r's kind must say.
func (c *Checker) textHolds(ctx context.Context, r Record, txt string) error {
	switch r.Kind {
	case DKIMKey:
		key, err := dkimkey.Read(r.KeyFile)
		if err != nil {
			return fmt.Errorf("the key on disk: %w", err)
		}
		if err := dkimkey.Matches(txt, key); err != nil {
			return errWrong{fmt.Sprintf("%q: %v", txt, err)}
		}
	case DMARC:
		if !strings.Contains(strings.ReplaceAll(txt, " ", ""), ";p=") {
			return errWrong{fmt.Sprintf("%q without a policy (p=)", txt)}
		}
	case SPF:
		return c.spfLets(ctx, strings.TrimSuffix(r.Name, "."), txt)
	}
	return nil
}

// spfLets checks that the domain's SPF policy passes mail from each of
// the host's addresses, evaluated as receivers do.
func (c *Checker) spfLets(ctx context.Context, domain, txt string) error {
	for _, a := range c.Hosts {
		res, err := spf.CheckHostWithSender(net.IP(a.AsSlice()), c.Host, "postmaster@"+domain,
			spf.WithResolver(c.Resolver), spf.WithContext(ctx))
		if res != spf.Pass {
			return errWrong{fmt.Sprintf("%q, which gives %s for %s (%v)", txt, res, a, err)}
		}
	}
	return nil
}
