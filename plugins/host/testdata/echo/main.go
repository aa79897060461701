// Command echo is a test plugin with every hook. It answers with the
// verdict its input names: the local part of the recipient at Rcpt
// ("reject@", "tempfail@", "discard@", "accept@", "junk@", "error@",
// "evil@", and at Deliver "copies": one into INBOX seen and flagged, one
// into Archive), the X-Verdict field at Data and Deliver, the HELO name at
// Connect and the sender's local part at Mail. Every verdict carries the
// edit "X-Echo: <config mark>" so tests can see which plugins ran.
package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"postline/plugins/sdk"
)

type echo struct{ mark string }

func (e *echo) Configure(cfg map[string]any) error {
	e.mark, _ = cfg["mark"].(string)
	if n, ok := cfg["number"]; ok {
		if _, isInt := n.(int64); !isInt {
			return fmt.Errorf("number: got %T, want int64", n)
		}
	}
	return nil
}

func (e *echo) verdict(word string) (sdk.Verdict, error) {
	var v sdk.Verdict
	switch word {
	case "reject":
		v = sdk.Reject(554, "5.7.1", "echo says no")
	case "tempfail":
		v = sdk.Tempfail(450, "4.2.0", "echo says later")
	case "discard":
		v = sdk.Discard()
	case "accept":
		v = sdk.Accept()
	case "junk":
		v = sdk.FileInto("Junk")
	case "copies":
		v = sdk.Continue().WithCopy("", `\Seen`, `\Flagged`).WithCopy("Archive")
	case "error":
		return v, errors.New("echo was asked to fail")
	case "evil":
		return sdk.Reject(250, "2.0.0", "ok\r\n250 fake").With(sdk.Prepend("X-Evil", "a\r\nBcc: x@y"), sdk.Prepend("Bad Name", "v")), nil
	default:
		v = sdk.Continue()
	}
	return v.With(sdk.Prepend("X-Echo", e.mark)), nil
}

func (e *echo) Connect(_ context.Context, c *sdk.Conn) (sdk.Verdict, error) {
	return e.verdict(c.Helo)
}

func (e *echo) Disconnect(_ context.Context, c *sdk.Conn) error {
	sdk.Log().Info("echo saw disconnect", "port", c.ClientPort)
	return nil
}

func (e *echo) Mail(_ context.Context, m *sdk.Mail) (sdk.Verdict, error) {
	local, _, _ := strings.Cut(m.Sender, "@")
	return e.verdict(local)
}

func (e *echo) Rcpt(_ context.Context, r *sdk.Rcpt) (sdk.Verdict, error) {
	sdk.Log().Info("echo saw rcpt", "rcpt", r.Recipient, "tls", r.Conn.TLSVersion)
	local, _, _ := strings.Cut(r.Recipient, "@")
	return e.verdict(local)
}

func (e *echo) Data(_ context.Context, m *sdk.Message) (sdk.Verdict, error) {
	return e.verdict(m.Header.Get("X-Verdict"))
}

func (e *echo) HeadersOnly() bool { return true }

func (e *echo) Deliver(_ context.Context, d *sdk.Delivery) (sdk.Verdict, error) {
	return e.verdict(d.Header.Get("X-Verdict"))
}

func main() { sdk.Serve(&echo{}) }
