// Command return-path is postline's bundled deliver-hook filter, built as
// bin/postline-plugin-return-path and run by the MDA by default.
//
// RFC 5321 §4.4: at final delivery the Return-Path field records the
// envelope sender, and a Return-Path already in the message (added by a
// sender, or by a hop that should not have) must not survive, since it
// would misdirect bounces. So every existing one is removed first.
package main

import (
	"context"

	"postline/plugins/sdk"
)

type filter struct{}

// Deliver replaces any Return-Path with the envelope sender; the null
// sender (bounces) becomes "<>".
func (filter) Deliver(_ context.Context, d *sdk.Delivery) (sdk.Verdict, error) {
	return sdk.Continue().With(
		sdk.Remove("Return-Path"),
		sdk.Prepend("Return-Path", "<"+d.Sender+">"),
	), nil
}

func main() { sdk.Serve(filter{}) }
