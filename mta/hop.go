package mta

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"postline/config"
)

// DialHop opens a session with a host of a next hop (relayhost or
// route). With credentials, only over TLS whose certificate is valid for
// the host (implicit, or STARTTLS that must be offered), then
// authenticated: the password never goes out in the clear. Without, on
// implicit TLS if asked, else as to any MX host.
func (d *Dialer) DialHop(ctx context.Context, hop config.NextHop, host, addr string) (*Conn, error) {
	return d.dialHop(ctx, hop, host, addr, hop.Auth != nil)
}

// dialHop is DialHop, with verified TLS also without credentials when
// verified is set (a REQUIRETLS message).
func (d *Dialer) dialHop(ctx context.Context, hop config.NextHop, host, addr string, verified bool) (*Conn, error) {
	if !verified && !hop.Implicit {
		return d.Dial(ctx, host, addr)
	}
	mode := tlsVerify
	if hop.Implicit {
		mode = tlsImplicit
	}
	c, err := d.dial(ctx, host, addr, mode)
	if err == nil && hop.Auth != nil {
		if err = authenticate(c, hop.Auth); err != nil {
			c.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("mta: %s[%s]: %w", host, addr, err)
	}
	return c, nil
}

// authenticate logs in with PLAIN, or LOGIN when only that is offered.
// A refusal defers (a wrong password is the admin's to fix, not a
// reason to bounce the users' mail), saying what the server said.
func authenticate(c *Conn, creds *config.Credentials) error {
	ok, mechs := c.Client.Extension("AUTH")
	offered := strings.Fields(strings.ToUpper(mechs))
	var client sasl.Client
	switch {
	case !ok:
		return errAuth("offers no AUTH")
	case slices.Contains(offered, sasl.Plain):
		client = sasl.NewPlainClient("", creds.User, creds.Password)
	case slices.Contains(offered, sasl.Login):
		client = sasl.NewLoginClient(creds.User, creds.Password)
	default:
		return errAuth("offers neither AUTH PLAIN nor LOGIN, only " + mechs)
	}
	err := c.Client.Auth(client)
	var reply *smtp.SMTPError
	if errors.As(err, &reply) {
		return errAuth(fmt.Sprintf("refused AUTH as %s: %d %s", creds.User, reply.Code, reply.Message))
	}
	return err
}

// errAuth defers (RFC 3463 X.7.8: authentication credentials invalid).
func errAuth(why string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 8}, Message: "the next hop " + why}
}
