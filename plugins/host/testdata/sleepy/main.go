// Command sleepy is a test plugin that hangs on a message carrying the
// field "X-Sleep" and ignores the host's cancellation, as a stuck plugin would.
package main

import (
	"context"
	"time"

	"postline/plugins/sdk"
)

type sleepy struct{}

func (sleepy) Data(_ context.Context, m *sdk.Message) (sdk.Verdict, error) {
	if m.Header.Get("X-Sleep") != "" {
		time.Sleep(time.Hour)
	}
	return sdk.Continue(), nil
}

func main() { sdk.Serve(sleepy{}) }
