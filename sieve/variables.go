package sieve

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// expand replaces variable references in s (RFC 5229 §3): "${name}" with
// the variable (names are case-insensitive, unset ones are empty) and
// "${N}" with match variable N. A reference that is not well-formed, or
// names an unknown namespace, is left as written.
func expand(s string, vars map[string]string, match []string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			b.WriteString(s[i:])
			return b.String()
		}
		name := s[i+2 : i+j]
		if v, ok := lookup(name, vars, match); ok {
			b.WriteString(v)
			s = s[i+j+1:]
			continue
		}
		b.WriteString("${")
		s = s[i+2:]
	}
}

func lookup(name string, vars map[string]string, match []string) (string, bool) {
	if name != "" && strings.Trim(name, "0123456789") == "" {
		n, err := strconv.Atoi(name)
		if err == nil && n < len(match) {
			return match[n], true
		}
		return "", err == nil
	}
	if !validIdentifier(name) {
		return "", false
	}
	return vars[strings.ToLower(name)], true
}

// modify applies set's modifiers in precedence order (RFC 5229 §4.1).
func modify(v string, mods map[string]Arg) string {
	order := []string{"lower", "upper", "lowerfirst", "upperfirst", "quotewildcard", "length"}
	for _, m := range order {
		if _, ok := mods[m]; ok {
			v = modifier(m, v)
		}
	}
	return v
}

func modifier(m, v string) string {
	switch m {
	case "lower":
		return strings.ToLower(v)
	case "upper":
		return strings.ToUpper(v)
	case "lowerfirst":
		return mapFirst(v, unicode.ToLower)
	case "upperfirst":
		return mapFirst(v, unicode.ToUpper)
	case "quotewildcard":
		r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`)
		return r.Replace(v)
	case "length":
		return strconv.Itoa(utf8.RuneCountInString(v))
	}
	return v
}

func mapFirst(v string, f func(rune) rune) string {
	r, n := utf8.DecodeRuneInString(v)
	if n == 0 {
		return v
	}
	return string(f(r)) + v[n:]
}

// truncateUTF8 cuts s to at most max bytes without splitting a character.
func truncateUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}

// decodeEncoded replaces "${hex:..}" and "${unicode:..}" (RFC 5228
// §2.4.2.4, encoded-character). Malformed sequences are left as written.
func decodeEncoded(s string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		j := -1
		if i >= 0 {
			j = strings.IndexByte(s[i:], '}')
		}
		if i < 0 || j < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		if dec, ok := decodeOne(s[i+2 : i+j]); ok {
			b.WriteString(dec)
			s = s[i+j+1:]
			continue
		}
		b.WriteString("${")
		s = s[i+2:]
	}
}

// decodeOne decodes the inside of one "${hex:...}" or "${unicode:...}".
func decodeOne(body string) (string, bool) {
	colon := strings.IndexByte(body, ':')
	if colon < 0 {
		return "", false
	}
	kind := strings.ToLower(strings.TrimSpace(body[:colon]))
	if kind != "hex" && kind != "unicode" {
		return "", false
	}
	var b strings.Builder
	for _, f := range strings.Fields(body[colon+1:]) {
		n, err := strconv.ParseUint(f, 16, 32)
		if err != nil {
			return "", false
		}
		if kind == "hex" {
			if n > 255 {
				return "", false
			}
			b.WriteByte(byte(n))
			continue
		}
		if !utf8.ValidRune(rune(n)) {
			return "", false
		}
		b.WriteRune(rune(n))
	}
	return b.String(), true
}
