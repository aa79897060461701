// Command panicky is a test plugin that panics in the middle of a message
// carrying the field "X-Panic", after reading part of its body, and at
// delivery (in the MDA) of such a message.
package main

import (
	"context"
	"io"

	"postline/plugins/sdk"
)

type panicky struct{}

func (panicky) Data(_ context.Context, m *sdk.Message) (sdk.Verdict, error) {
	if m.Header.Get("X-Panic") != "" {
		_, _ = io.CopyN(io.Discard, m.Body, 1000)
		panic("panicky was asked to panic")
	}
	_, _ = io.Copy(io.Discard, m.Body)
	return sdk.Continue().With(sdk.Append("X-Panicky", "passed")), nil
}

func (panicky) Deliver(_ context.Context, d *sdk.Delivery) (sdk.Verdict, error) {
	if d.Header.Get("X-Panic") != "" {
		panic("panicky was asked to panic at delivery")
	}
	return sdk.Continue(), nil
}

func main() { sdk.Serve(panicky{}) }
