package mta

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"postline/plugins/webhook/signature"
	"postline/queue"
	"postline/users"
)

// Events posts the delivery events of submitted messages to their
// submitters' webhooks (`postline token webhook`, docs/http-api.md): one
// POST of JSON per recipient result, signed as package signature says.
// It is best effort and never holds a delivery up: events wait in a
// bounded queue in memory and are tried three times; what stays true is
// the answer of GET /v1/messages/{id}.
type Events struct {
	Hooks  *users.Webhooks
	Client *http.Client
	Log    zerolog.Logger
	queue  chan pending
}

// Event is one recipient's result, as POSTed.
type Event struct {
	Event       string    `json:"event"` // "delivered", "deferred" or "bounced"
	ID          string    `json:"id"`    // the queue ID the API answered the submission with
	Recipient   string    `json:"recipient"`
	Reply       string    `json:"reply,omitempty"` // the refusal, for deferred and bounced
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	At          time.Time `json:"at"`
}

type pending struct {
	hook users.Webhook
	body []byte
}

// eventQueue bounds the events waiting to be posted; past it they are dropped (logged).
const eventQueue = 1000

// NewEvents returns an Events for hooks; Run must run for it to post.
func NewEvents(hooks *users.Webhooks, log zerolog.Logger) *Events {
	return &Events{Hooks: hooks, Client: &http.Client{Timeout: 10 * time.Second}, Log: log,
		queue: make(chan pending, eventQueue)}
}

// Notify queues the event of r's result in env, if env's submitter has a
// webhook; it never blocks.
func (e *Events) Notify(env *queue.Envelope, r *queue.Recipient, now time.Time) {
	if e == nil || env.AuthUser == "" {
		return
	}
	hook, ok := e.Hooks.Lookup(env.AuthUser)
	if !ok {
		return
	}
	ev := Event{Event: eventName(r), ID: env.ID, Recipient: r.Address, Attempts: r.Attempts, At: now}
	if ev.Event != "delivered" {
		ev.Reply = r.LastError
	}
	if ev.Event == "deferred" {
		ev.NextAttempt = r.NextAttempt
	}
	body, _ := json.Marshal(ev) // plain fields: cannot fail
	select {
	case e.queue <- pending{hook, body}:
	default:
		e.Log.Warn().Str("queue_id", env.ID).Str("user", env.AuthUser).Msg("delivery event dropped: too many waiting")
	}
}

func eventName(r *queue.Recipient) string {
	switch r.State {
	case queue.Delivered:
		return "delivered"
	case queue.Failed:
		return "bounced"
	}
	return "deferred"
}

// eventWorkers post at once: one webhook that is down (36 s per event
// before it is dropped) holds up one worker, not everyone's events.
const eventWorkers = 8

// Run posts queued events until ctx ends.
func (e *Events) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range eventWorkers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case p := <-e.queue:
					e.deliver(ctx, p)
				}
			}
		})
	}
	wg.Wait()
}

// deliver posts one event, trying again after 1 s and 5 s.
func (e *Events) deliver(ctx context.Context, p pending) {
	var err error
	for i, wait := range []time.Duration{0, time.Second, 5 * time.Second} {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if err = e.post(ctx, p); err == nil {
			return
		}
		e.Log.Debug().Err(err).Int("try", i+1).Msg("delivery event not taken")
	}
	e.Log.Warn().Err(err).Str("user", p.hook.User).Msg("delivery event dropped after 3 tries")
}

func (e *Events) post(ctx context.Context, p pending) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.hook.URL, bytes.NewReader(p.body))
	if err != nil {
		return err
	}
	now := time.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "postline-events")
	req.Header.Set(signature.TimestampHeader, strconv.FormatInt(now, 10))
	req.Header.Set(signature.SignatureHeader, signature.Sign(p.hook.Secret, now, p.body))
	resp, err := e.Client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}
