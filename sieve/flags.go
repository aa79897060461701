package sieve

import "strings"

// This file implements RFC 5232 (imap4flags): flag lists kept in the
// internal variable or in named variables, and :flags on keep/fileinto.

// flagList splits strings into flags and removes duplicates, comparing
// without regard to case (IMAP flags are case-insensitive, RFC 3501 §2.3.2).
func flagList(strs []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range strs {
		for _, f := range strings.Fields(s) {
			k := strings.ToLower(f)
			if !seen[k] {
				seen[k] = true
				out = append(out, f)
			}
		}
	}
	return out
}

// flagsArg returns the flags for keep or fileinto: :flags when given, the
// internal variable otherwise (RFC 5232 §5).
func (r *run) flagsArg(ch *checked) []string {
	if a, ok := ch.tags["flags"]; ok {
		return flagList(r.list(&a))
	}
	return r.flags
}

// flagCommand runs setflag, addflag and removeflag (RFC 5232 §3), on the
// named variable when one is given.
func (r *run) flagCommand(name string, ch *checked) {
	target := ""
	if ch.pos[0] != nil {
		target = strings.ToLower(r.str(ch.pos[0]))
	}
	cur := r.flags
	if target != "" {
		cur = flagList([]string{r.vars[target]})
	}
	arg := flagList(r.list(ch.pos[1]))
	switch name {
	case "setflag":
		cur = arg
	case "addflag":
		cur = flagList(append(append([]string{}, cur...), arg...))
	case "removeflag":
		cur = removeFlags(cur, arg)
	}
	if target == "" {
		r.flags = cur
		return
	}
	r.vars[target] = strings.Join(cur, " ")
}

func removeFlags(cur, drop []string) []string {
	var out []string
	for _, f := range cur {
		keep := true
		for _, d := range drop {
			if strings.EqualFold(f, d) {
				keep = false
			}
		}
		if keep {
			out = append(out, f)
		}
	}
	return out
}

// hasflagValues returns the flags hasflag looks at (RFC 5232 §4).
func (r *run) hasflagValues(ch *checked) []string {
	if ch.pos[0] == nil {
		return r.flags
	}
	var strs []string
	for _, name := range r.list(ch.pos[0]) {
		strs = append(strs, r.vars[strings.ToLower(name)])
	}
	return flagList(strs)
}
