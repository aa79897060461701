package users

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// The webhooks of the HTTP API's delivery events (docs/http-api.md): a
// user's submitted messages have their recipients' results POSTed to the
// user's URL, signed with the user's secret. One line per user, in a file
// beside the tokens file:
//
//	alice@example.test https://app.example.org/hooks/mail 64-hex-digit-secret
//
// The secret is kept as it is, not hashed: it is the HMAC key both the
// MTA and the receiver sign with (plugins/webhook/signature).

// ErrNoWebhook is returned by WebhookFile.Remove for a user without one.
var ErrNoWebhook = errors.New("has no webhook")

// Webhook is one user's delivery-event endpoint.
type Webhook struct {
	User   string
	URL    string
	Secret []byte
}

// Webhooks answers "where do this user's events go", reading the file
// again when it changes.
type Webhooks struct {
	file watched[map[string]Webhook]
}

// OpenWebhooks returns the webhooks of the file at path; a missing file has none.
func OpenWebhooks(path string) (*Webhooks, error) {
	w := &Webhooks{file: watched[map[string]Webhook]{path: path, parse: parseWebhookMap}}
	if err := w.file.refresh(); err != nil {
		return nil, err
	}
	return w, nil
}

// Lookup returns user's webhook, if it has one.
func (w *Webhooks) Lookup(user string) (Webhook, bool) {
	if w == nil {
		return Webhook{}, false
	}
	h, ok := w.file.get()[Normalize(user)]
	return h, ok
}

func parseWebhookMap(path string, data []byte) (map[string]Webhook, error) {
	list, err := parseWebhooks(path, data)
	return byKey(list, func(h Webhook) string { return h.User }), err
}

var errWebhookLine = errors.New(`expected "address https://url secret"; set it again with ` + "`postline token webhook ADDRESS URL`")

func parseWebhooks(path string, data []byte) ([]Webhook, error) {
	return records(path, data, func(line string) (Webhook, error) {
		f := strings.Fields(line)
		if len(f) != 3 || CheckWebhookURL(f[1]) != nil {
			return Webhook{}, errWebhookLine
		}
		secret, err := hex.DecodeString(f[2])
		if err != nil || len(secret) < 16 {
			return Webhook{}, errWebhookLine
		}
		return Webhook{User: Normalize(f[0]), URL: f[1], Secret: secret}, nil
	})
}

// CheckWebhookURL accepts an absolute http or https URL.
func CheckWebhookURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL such as https://app.example.org/hooks/mail", raw)
	}
	return nil
}

// WebhookFile is the webhooks file as `postline token webhook` edits it.
type WebhookFile struct {
	Path string
	Like string // the file whose owner and group a new file takes (the users file)
}

// Set gives user the webhook url with a new secret, which it returns.
func (f WebhookFile) Set(user, url string) (string, error) {
	if err := CheckWebhookURL(url); err != nil {
		return "", err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("webhooks: random: %w", err)
	}
	list, err := f.read()
	if err != nil {
		return "", err
	}
	h := Webhook{User: Normalize(user), URL: url, Secret: raw[:]}
	list = append(removeWebhook(list, h.User), h)
	return hex.EncodeToString(raw[:]), f.write(list)
}

// Remove takes user's webhook away.
func (f WebhookFile) Remove(user string) error {
	list, err := f.read()
	if err != nil {
		return err
	}
	kept := removeWebhook(list, Normalize(user))
	if len(kept) == len(list) {
		return fmt.Errorf("%s %w", Normalize(user), ErrNoWebhook)
	}
	return f.write(kept)
}

func removeWebhook(list []Webhook, user string) []Webhook {
	var out []Webhook
	for _, h := range list {
		if h.User != user {
			out = append(out, h)
		}
	}
	return out
}

func (f WebhookFile) read() ([]Webhook, error) {
	data, err := readFile(f.Path, "webhooks")
	if err != nil {
		return nil, err
	}
	return parseWebhooks(f.Path, data)
}

func (f WebhookFile) write(list []Webhook) error {
	sort.Slice(list, func(i, j int) bool { return list[i].User < list[j].User })
	var buf bytes.Buffer
	buf.WriteString("# address url secret: the HTTP API's delivery events (postline token webhook)\n")
	for _, h := range list {
		fmt.Fprintf(&buf, "%s %s %s\n", h.User, h.URL, hex.EncodeToString(h.Secret))
	}
	return replaceFileLike(f.Path, f.Like, buf.Bytes())
}
