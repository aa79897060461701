package sieve

// This file implements :matches (RFC 5228 §2.7.1) without backtracking:
// the pattern is cut at each '*' into segments; the first segment is
// anchored at the start, the last at the end, and each middle segment takes
// its leftmost place. Work is bounded by len(pattern) * len(value), so a
// hostile pattern cannot take exponential time. As in Pigeonhole, each '*'
// but the last matches as little as possible; the captures follow
// RFC 5229 §3.2 (${0} the whole value, ${N} the Nth wildcard).

// globElem is one pattern element: a literal octet or '?'. As in
// Pigeonhole, '?' is one octet: i;octet and i;ascii-casemap compare octets
// (RFC 4790 §9.2, §9.3).
type globElem struct {
	r   byte
	any bool
}

// parseGlob splits a pattern into segments between '*'; "\" escapes the
// next character (§2.7.1).
func parseGlob(cmp, pat string) [][]globElem {
	segs := [][]globElem{nil}
	rs := []byte(fold(cmp, pat))
	for i := 0; i < len(rs); i++ {
		last := len(segs) - 1
		switch rs[i] {
		case '*':
			segs = append(segs, nil)
		case '?':
			segs[last] = append(segs[last], globElem{any: true})
		case '\\':
			if i+1 < len(rs) {
				i++
			}
			segs[last] = append(segs[last], globElem{r: rs[i]})
		default:
			segs[last] = append(segs[last], globElem{r: rs[i]})
		}
	}
	return segs
}

// segAt reports whether seg matches text at position i.
func segAt(seg []globElem, text []byte, i int) bool {
	if i+len(seg) > len(text) {
		return false
	}
	for k, e := range seg {
		if !e.any && e.r != text[i+k] {
			return false
		}
	}
	return true
}

// glob matches value against pattern and returns the match variables.
func glob(cmp, value, pat string) ([]string, bool) {
	segs := parseGlob(cmp, pat)
	orig := []byte(value)
	text := []byte(fold(cmp, value))
	caps := []string{value}
	first, last := segs[0], segs[len(segs)-1]
	if len(segs) == 1 {
		if len(first) != len(text) || !segAt(first, text, 0) {
			return nil, false
		}
		return appendAnys(caps, first, orig, 0), true
	}
	if !segAt(first, text, 0) {
		return nil, false
	}
	caps = appendAnys(caps, first, orig, 0)
	end := len(text) - len(last)
	if end < len(first) {
		return nil, false
	}
	cur := len(first)
	for _, seg := range segs[1 : len(segs)-1] {
		at := find(seg, text, cur, end)
		if at < 0 {
			return nil, false
		}
		caps = append(caps, string(orig[cur:at]))
		caps = appendAnys(caps, seg, orig, at)
		cur = at + len(seg)
	}
	if !segAt(last, text, end) {
		return nil, false
	}
	caps = append(caps, string(orig[cur:end]))
	return appendAnys(caps, last, orig, end), true
}

// find returns the leftmost i in [from, limit-len(seg)] where seg matches.
func find(seg []globElem, text []byte, from, limit int) int {
	for i := from; i+len(seg) <= limit; i++ {
		if segAt(seg, text, i) {
			return i
		}
	}
	return -1
}

// appendAnys adds one capture per '?' of seg placed at position at.
func appendAnys(caps []string, seg []globElem, orig []byte, at int) []string {
	for k, e := range seg {
		if e.any {
			caps = append(caps, string(orig[at+k]))
		}
	}
	return caps
}
