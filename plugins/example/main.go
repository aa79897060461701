// Command example is a complete custom postline filter: it rejects mail
// whose Subject contains a configured word and marks the rest with
// "X-Example: checked". It only reads headers, so postline never sends it
// a body. Enable it in postline.toml:
//
//	[[plugins]]
//	name = "example"   # runs bin/postline-plugin-example, beside the daemons
//	daemon = "mta"
//	hooks = ["data"]
//	[plugins.config]
//	word = "lottery"
//
// It never writes to stdout: go-plugin's handshake travels there.
package main

import (
	"context"
	"fmt"
	"strings"

	"postline/plugins/sdk"
)

type filter struct{ word string }

// Configure reads the word to refuse; it runs before any message.
func (f *filter) Configure(cfg map[string]any) error {
	word, ok := cfg["word"].(string)
	if !ok || word == "" {
		return fmt.Errorf(`set word = "..." in [plugins.config]`)
	}
	f.word = strings.ToLower(word)
	return nil
}

// HeadersOnly: this filter needs no body, so none is streamed to it.
func (f *filter) HeadersOnly() bool { return true }

func (f *filter) Data(_ context.Context, m *sdk.Message) (sdk.Verdict, error) {
	subject := strings.ToLower(m.Header.Get("Subject"))
	if strings.Contains(subject, f.word) {
		sdk.Log().Info("rejected", "queue_id", m.Conn.QueueID, "word", f.word)
		return sdk.Reject(550, "5.7.1", "message refused by content filter"), nil
	}
	return sdk.Continue().With(sdk.Prepend("X-Example", "checked")), nil
}

func main() { sdk.Serve(&filter{}) }
