package sieve

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-message"
)

// This file implements the body test of RFC 5173.

// maxBodyBytes bounds how much of a body the body test reads.
const maxBodyBytes = 16 << 20

// bodyPart is one leaf MIME part, transfer-decoded and converted to UTF-8.
type bodyPart struct {
	mediaType string // lower-case type/subtype
	text      string
}

// bodyCache holds the body read once per run.
type bodyCache struct {
	raw   string
	parts []bodyPart
}

// bodyValues returns the strings the body test matches (RFC 5173 §5).
func (r *run) bodyValues(ch *checked) ([]string, error) {
	if r.body == nil {
		b, err := r.readBody()
		if err != nil {
			return nil, err
		}
		r.body = b
	}
	if ch.has("raw") {
		return []string{r.body.raw}, nil // §5.1: no decoding at all
	}
	types := []string{"text"} // §5.3: :text is :content "text"
	if a, ok := ch.tags["content"]; ok {
		types = r.list(&a)
	}
	var out []string
	for _, p := range r.body.parts {
		if typeMatches(p.mediaType, types) {
			out = append(out, p.text)
		}
	}
	return out, nil
}

// typeMatches: §5.2: "" matches every type, "type" every subtype of it,
// "type/subtype" exactly that.
func typeMatches(mt string, types []string) bool {
	for _, t := range types {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" || t == mt || (!strings.Contains(t, "/") && strings.HasPrefix(mt, t+"/")) {
			return true
		}
	}
	return false
}

func (r *run) readBody() (*bodyCache, error) {
	if r.in.Body == nil {
		return &bodyCache{}, nil
	}
	rd, err := r.in.Body()
	if err != nil {
		return nil, fmt.Errorf("sieve: body test: open body: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(rd, maxBodyBytes))
	if err != nil {
		return nil, fmt.Errorf("sieve: body test: read body: %w", err)
	}
	return &bodyCache{raw: string(raw), parts: r.mimeParts(raw)}, nil
}

// mimeParts walks the MIME structure (RFC 2045/2046) and returns the leaf
// parts decoded. A body that does not parse is one text/plain part.
func (r *run) mimeParts(raw []byte) []bodyPart {
	var hdr bytes.Buffer
	for _, f := range r.in.Header.Fields {
		hdr.WriteString(f.Name + ":" + strings.TrimRight(f.Value, "\r\n") + "\r\n")
	}
	hdr.WriteString("\r\n")
	ent, err := message.Read(io.MultiReader(&hdr, bytes.NewReader(raw)))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return []bodyPart{{mediaType: "text/plain", text: string(raw)}}
	}
	var parts []bodyPart
	walkErr := ent.Walk(func(_ []int, e *message.Entity, err error) error {
		if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			return err
		}
		mt, _, _ := e.Header.ContentType()
		if mt == "" {
			mt = "text/plain" // RFC 2045 §5.2 default
		}
		if strings.HasPrefix(mt, "multipart/") {
			return nil
		}
		b, _ := io.ReadAll(io.LimitReader(e.Body, maxBodyBytes))
		parts = append(parts, bodyPart{mediaType: strings.ToLower(mt), text: string(b)})
		return nil
	})
	if walkErr != nil && len(parts) == 0 {
		return []bodyPart{{mediaType: "text/plain", text: string(raw)}}
	}
	return parts
}
