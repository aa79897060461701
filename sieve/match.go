package sieve

import (
	"strconv"
	"strings"
)

// This file implements comparators (RFC 4790 §9, RFC 5228 §2.7.3), match
// types (RFC 5228 §2.7.1) and relational matches (RFC 5231).

// fold maps a string for comparison under the comparator: i;ascii-casemap
// upper-cases ASCII letters only (RFC 4790 §9.2).
func fold(cmp, s string) string {
	if cmp != "i;ascii-casemap" {
		return s
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'a' && c <= 'z' {
			return strings.Map(upperASCII, s)
		}
	}
	return s
}

func upperASCII(r rune) rune {
	if r >= 'a' && r <= 'z' {
		return r - 'a' + 'A'
	}
	return r
}

// numeric returns the value of i;ascii-numeric (RFC 4790 §9.1): the leading
// digits; a string that starts with no digit is positive infinity (inf).
func numeric(s string) (digits string, inf bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return "", true
	}
	d := strings.TrimLeft(s[:i], "0")
	return d, false
}

// compare orders a and b under the comparator: -1, 0 or 1.
func compare(cmp, a, b string) int {
	if cmp != "i;ascii-numeric" {
		return strings.Compare(fold(cmp, a), fold(cmp, b))
	}
	da, ia := numeric(a)
	db, ib := numeric(b)
	switch {
	case ia && ib:
		return 0
	case ia:
		return 1
	case ib:
		return -1
	case len(da) != len(db):
		return sign(len(da) - len(db))
	}
	return strings.Compare(da, db)
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// relation applies a relational operator to a comparison (RFC 5231 §5).
func relation(op string, c int) bool {
	switch op {
	case "gt":
		return c > 0
	case "ge":
		return c >= 0
	case "lt":
		return c < 0
	case "le":
		return c <= 0
	case "eq":
		return c == 0
	case "ne":
		return c != 0
	}
	return false
}

// matchResult is the outcome of matching values against keys; captures
// hold the match variables of the first :matches success (RFC 5229 §3.2).
type matchResult struct {
	ok       bool
	captures []string
}

// match tests values against keys. Any value matching any key is a match
// (RFC 5228 §2.7.1); :count compares the number of values (RFC 5231 §4.2).
func (m matcher) match(values, keys []string) matchResult {
	if m.typ == "count" {
		n := strconv.Itoa(len(values))
		for _, k := range keys {
			if relation(m.rel, compare(m.cmp, n, k)) {
				return matchResult{ok: true}
			}
		}
		return matchResult{}
	}
	for _, v := range values {
		for _, k := range keys {
			if r := m.one(v, k); r.ok {
				return r
			}
		}
	}
	return matchResult{}
}

// one matches one value against one key.
func (m matcher) one(v, k string) matchResult {
	switch m.typ {
	case "value":
		return matchResult{ok: relation(m.rel, compare(m.cmp, v, k))}
	case "contains":
		return matchResult{ok: strings.Contains(fold(m.cmp, v), fold(m.cmp, k))}
	case "matches":
		caps, ok := glob(m.cmp, v, k)
		return matchResult{ok: ok, captures: caps}
	}
	return matchResult{ok: compare(m.cmp, v, k) == 0}
}
