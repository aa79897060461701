// Package srs is the Sender Rewriting Scheme for forwarded mail: when
// an alias forwards mail from another domain to an outside address, the
// envelope sender becomes an address of ours, so that SPF passes at the
// destination, and a bounce to that address finds its way back.
//
// The format is libsrs2's and postsrsd's, which other forwarders and
// their bounces already know (Shevek's "Sender Rewriting Scheme" paper,
// as used by Postfix with postsrsd and by chasquid):
//
//	SRS0=HHHH=TT=orig-domain=orig-local@srs-domain
//
// TT is the day the address was made (days since 1970, modulo 1024, in
// two base32 characters), HHHH the first four base64 characters of an
// HMAC-SHA1 over the lower-cased "TT" "orig-domain" "orig-local" with a
// secret of this host. An address is good for MaxAge; its hash is
// compared case-insensitively, as some MTAs change the case of local
// parts. Left out: SRS1 (rewriting an SRS0 address of another
// forwarder into a shorter one): such a sender is simply rewritten again.
//
// It never decides which mail is rewritten; the MTA does.
package srs

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// MaxAge is how long a rewritten address is accepted back (21 days, the
// default of libsrs2 and postsrsd).
const MaxAge = 21 * 24 * time.Hour

// timeBase32 is libsrs2's alphabet for the timestamp.
const timeBase32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

// timeSlots is how many days the two timestamp characters count before
// they wrap around.
const timeSlots = 1024

// Errors of Reverse.
var (
	ErrNotSRS  = errors.New("srs: not an SRS address")
	ErrBadHash = errors.New("srs: the hash does not match")
	ErrExpired = errors.New("srs: the address is too old (or from the future)")
)

// Rewriter makes and checks SRS addresses in Domain.
type Rewriter struct {
	Domain string
	Secret []byte
}

// Rewrite returns sender (local@domain) as an SRS0 address in r.Domain.
func (r *Rewriter) Rewrite(sender string, now time.Time) (string, error) {
	i := strings.LastIndexByte(sender, '@')
	if i <= 0 || i == len(sender)-1 {
		return "", fmt.Errorf("srs: cannot rewrite %q: not local@domain", sender)
	}
	local, domain := sender[:i], sender[i+1:]
	stamp := timestamp(now)
	return "SRS0=" + r.hash(stamp, domain, local) + "=" + stamp + "=" + domain + "=" + local + "@" + r.Domain, nil
}

// IsSRS reports whether the local part of addr looks like an SRS address
// (which Reverse may still refuse).
func IsSRS(local string) bool {
	return len(local) > 5 && strings.EqualFold(local[:5], "SRS0=")
}

// ReverseAddress is Reverse for a whole address: ErrNotSRS unless addr is
// an SRS address in r.Domain (or r is nil, SRS being off).
func (r *Rewriter) ReverseAddress(addr string, now time.Time) (string, error) {
	i := strings.LastIndexByte(addr, '@')
	if r == nil || i < 0 || !strings.EqualFold(addr[i+1:], r.Domain) {
		return "", ErrNotSRS
	}
	return r.Reverse(addr[:i], now)
}

// Reverse returns the original sender of the SRS address local (the part
// before "@r.Domain"), or an error when it was not made here (ErrBadHash)
// or is older than MaxAge (ErrExpired).
func (r *Rewriter) Reverse(local string, now time.Time) (string, error) {
	if !IsSRS(local) {
		return "", ErrNotSRS
	}
	// HHHH=TT=domain=local: the original local part may hold "=".
	parts := strings.SplitN(local[5:], "=", 4)
	if len(parts) != 4 || parts[2] == "" || parts[3] == "" {
		return "", ErrNotSRS
	}
	hash, stamp, domain, orig := parts[0], parts[1], parts[2], parts[3]
	want := r.hash(strings.ToUpper(stamp), domain, orig)
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(hash)), []byte(strings.ToLower(want))) != 1 {
		return "", ErrBadHash
	}
	if !fresh(stamp, now) {
		return "", ErrExpired
	}
	return orig + "@" + domain, nil
}

// hash is the first four characters of the base64 HMAC-SHA1 of the
// lower-cased stamp, domain and local part.
func (r *Rewriter) hash(stamp, domain, local string) string {
	mac := hmac.New(sha1.New, r.Secret)
	mac.Write([]byte(strings.ToLower(stamp + domain + local)))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))[:4]
}

// timestamp is now's day, modulo timeSlots, in two base32 characters.
func timestamp(now time.Time) string {
	day := now.Unix() / 86400 % timeSlots
	return string([]byte{timeBase32[day>>5], timeBase32[day&31]})
}

// fresh reports whether stamp names a day within MaxAge before now.
func fresh(stamp string, now time.Time) bool {
	if len(stamp) != 2 {
		return false
	}
	hi, lo := strings.IndexByte(timeBase32, upper(stamp[0])), strings.IndexByte(timeBase32, upper(stamp[1]))
	if hi < 0 || lo < 0 {
		return false
	}
	today := now.Unix() / 86400 % timeSlots
	age := (today - int64(hi<<5|lo) + timeSlots) % timeSlots
	return age <= int64(MaxAge/(24*time.Hour))
}

func upper(b byte) byte {
	if 'a' <= b && b <= 'z' {
		return b - 'a' + 'A'
	}
	return b
}
