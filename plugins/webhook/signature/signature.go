// Package signature signs postline's webhook requests and checks them the
// way a receiver should. A request carries
//
//	X-Postline-Timestamp: 1767225600
//	X-Postline-Signature: v1=HEX(HMAC-SHA256(secret, TIMESTAMP + "." + BODY))
//
// (HMAC: RFC 2104; SHA-256: FIPS 180-4), so the signature covers the exact
// bytes of the body and the moment it was sent. A receiver recomputes it
// over the body as received, before parsing it, and refuses a timestamp
// outside its replay window (Window, 5 minutes). Every retry is signed
// anew with its own timestamp, so a delivery deferred for hours still
// verifies.
//
// signature never reads a clock or a key file: the caller passes both.
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"time"
)

// The request header fields that carry the timestamp and the signature.
const (
	TimestampHeader = "X-Postline-Timestamp"
	SignatureHeader = "X-Postline-Signature"
)

// Window is the replay window a receiver should apply: a request whose
// timestamp is further than this from the receiver's clock is refused.
const Window = 5 * time.Minute

// Sign returns the X-Postline-Signature value for body sent at unix time
// timestamp.
func Sign(secret []byte, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(strconv.FormatInt(timestamp, 10) + "."))
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a webhook request: timestamp and sig are its
// X-Postline-Timestamp and X-Postline-Signature fields, body its bytes
// as received. It is the function docs/webhooks.md shows receivers.
func Verify(secret []byte, timestamp, sig string, body []byte, now time.Time, window time.Duration) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return errors.New("webhook: bad X-Postline-Timestamp")
	}
	if age := now.Sub(time.Unix(ts, 0)); age > window || age < -window {
		return errors.New("webhook: timestamp outside the replay window")
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp + "."))
	mac.Write(body)
	want := "v1=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return errors.New("webhook: signature does not match")
	}
	return nil
}
