// Package returnpath is postline's bundled deliver-hook filter, run by
// the MDA by default: inside it (sdk.Direct), or as the plugin
// bin/postline-plugin-return-path (cmd/postline-plugin-return-path) when
// its [[plugins]] table names that path.
//
// RFC 5321 §4.4: at final delivery the Return-Path field records the
// envelope sender, and a Return-Path already in the message (added by a
// sender, or by a hop that should not have) must not survive, since it
// would misdirect bounces. So every existing one is removed first.
package returnpath

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

// New returns the filter, for sdk.Serve or sdk.Direct.
func New() any { return filter{} }
