// Command counter is a test plugin that counts the body bytes it reads,
// at the data hook and at the deliver hook, and appends "X-Body-Bytes: N".
// With headers_only = true in its config it asks for no body at data.
package main

import (
	"context"
	"io"
	"strconv"

	"postline/plugins/sdk"
)

type counter struct{ headersOnly bool }

func (c *counter) Configure(cfg map[string]any) error {
	c.headersOnly, _ = cfg["headers_only"].(bool)
	return nil
}

func (c *counter) HeadersOnly() bool { return c.headersOnly }

func (c *counter) Data(_ context.Context, m *sdk.Message) (sdk.Verdict, error) {
	n, err := io.Copy(io.Discard, m.Body)
	if err != nil {
		return sdk.Verdict{}, err
	}
	sdk.Log().Debug("counted", "bytes", n)
	return sdk.Continue().With(sdk.Append("X-Body-Bytes", strconv.FormatInt(n, 10))), nil
}

func (c *counter) DeliverBody() bool { return true }

func (c *counter) Deliver(_ context.Context, d *sdk.Delivery) (sdk.Verdict, error) {
	n, err := io.Copy(io.Discard, d.Body)
	if err != nil {
		return sdk.Verdict{}, err
	}
	return sdk.Continue().With(sdk.Append("X-Body-Bytes", strconv.FormatInt(n, 10))), nil
}

func main() { sdk.Serve(&counter{}) }
