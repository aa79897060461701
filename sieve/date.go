package sieve

import (
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"time"
)

// This file implements the date and currentdate tests of RFC 5260.

// validDatePart reports whether p is a date-part of RFC 5260 §4.2.
func validDatePart(p string) bool {
	switch p {
	case "year", "month", "day", "date", "julian", "hour", "minute", "second",
		"time", "iso8601", "std11", "zone", "weekday":
		return true
	}
	return false
}

// parseZone parses "+hhmm" / "-hhmm" (RFC 5260 §4.1).
func parseZone(z string) (*time.Location, bool) {
	if len(z) != 5 || (z[0] != '+' && z[0] != '-') {
		return nil, false
	}
	hh, err1 := strconv.Atoi(z[1:3])
	mm, err2 := strconv.Atoi(z[3:5])
	if err1 != nil || err2 != nil || mm > 59 {
		return nil, false
	}
	off := hh*3600 + mm*60
	if z[0] == '-' {
		off = -off
	}
	return time.FixedZone(z, off), true
}

// parseMessageDate parses an RFC 5322 §3.3 date-time, comments dropped.
func parseMessageDate(v string) (time.Time, bool) {
	t, err := mail.ParseDate(strings.TrimSpace(stripComments(v)))
	return t, err == nil
}

// datePart formats one date-part of t (RFC 5260 §4.2).
func datePart(t time.Time, part string) string {
	switch part {
	case "year":
		return fmt.Sprintf("%04d", t.Year())
	case "month":
		return fmt.Sprintf("%02d", int(t.Month()))
	case "day":
		return fmt.Sprintf("%02d", t.Day())
	case "date":
		return t.Format("2006-01-02")
	case "julian":
		// Day 0 of the Modified Julian Day count is 1858-11-17.
		day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		epoch := time.Date(1858, 11, 17, 0, 0, 0, 0, time.UTC)
		return strconv.Itoa(int(day.Sub(epoch).Hours() / 24))
	case "hour":
		return fmt.Sprintf("%02d", t.Hour())
	case "minute":
		return fmt.Sprintf("%02d", t.Minute())
	case "second":
		return fmt.Sprintf("%02d", t.Second())
	case "time":
		return t.Format("15:04:05")
	case "iso8601":
		return t.Format(time.RFC3339) // "Z" for UTC, as Pigeonhole writes it
	case "std11":
		return t.Format("Mon, 02 Jan 2006 15:04:05 -0700")
	case "zone":
		return t.Format("-0700")
	case "weekday":
		return strconv.Itoa(int(t.Weekday()))
	}
	return ""
}
