package users

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strings"

	"postline/address"
)

// maxAliasDepth bounds alias chains (alias of an alias ...), as Postfix's
// virtual_alias_recursion_limit does; a longer chain or a loop is cut
// there and the addresses reached so far are kept.
const maxAliasDepth = 10

// Aliases maps addresses to the addresses their mail goes to, from a
// file in the format of Postfix's virtual(5) table:
//
//	# alias          targets, separated by commas or spaces
//	info@example.org   alice@example.org, bob@example.org
//	abuse@example.org  alice@example.org
//
// It is read again whenever it changes. A nil *Aliases has none.
type Aliases struct {
	file watched[map[string][]string]
}

// OpenAliases returns the aliases of path; "" or a missing file has none.
// A line that does not parse is an error naming the file and the line.
func OpenAliases(path string) (*Aliases, error) {
	if path == "" {
		return nil, nil
	}
	a := &Aliases{file: watched[map[string][]string]{path: path, parse: parseAliases}}
	if err := a.file.refresh(); err != nil {
		return nil, err
	}
	return a, nil
}

func parseAliases(path string, data []byte) (map[string][]string, error) {
	aliases := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := aliasFields(line)
		if len(fields) < 2 {
			return nil, fmt.Errorf("%s:%d: expected \"alias@domain target@domain[, target@domain...]\"", path, n)
		}
		key, err := AliasKey(fields[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, n, err)
		}
		for _, f := range fields[1:] {
			if _, err := address.Parse(f); err != nil {
				return nil, fmt.Errorf("%s:%d: %q is not an address like user@example.org", path, n, f)
			}
		}
		for _, t := range fields[1:] {
			aliases[key] = append(aliases[key], Normalize(t))
		}
	}
	return aliases, sc.Err()
}

// aliasFields splits a line of the file into the alias and its targets.
func aliasFields(line string) []string {
	return strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
}

// AliasKey is the table key of an alias: an address, or "@domain" for
// the domain's catch-all.
func AliasKey(field string) (string, error) {
	if domain, ok := strings.CutPrefix(field, "@"); ok {
		d, err := address.NormalizeDomain(domain)
		if err != nil {
			return "", fmt.Errorf("%q is not a catch-all like @example.org", field)
		}
		return "@" + d, nil
	}
	if _, err := address.Parse(field); err != nil {
		return "", fmt.Errorf("%q is not an address like user@example.org (or @example.org for a catch-all)", field)
	}
	return Normalize(field), nil
}

// CatchAll returns the targets of domain's catch-all ("@domain" in the
// file), expanded; ok is false when it has none.
func (a *Aliases) CatchAll(domain string) ([]string, bool) {
	d, err := address.NormalizeDomain(domain)
	if err != nil {
		return nil, false
	}
	return a.Expand("@" + d)
}

// Expand returns where mail to addr goes: the targets of its alias,
// themselves expanded, without repeats, in file order; ok is false when
// addr is no alias. An alias listed among its own targets keeps a copy;
// a loop or a chain past maxAliasDepth ends at the address it reached.
func (a *Aliases) Expand(addr string) (targets []string, ok bool) {
	if a == nil {
		return nil, false
	}
	table := a.file.get()
	key := Normalize(addr)
	if _, ok := table[key]; !ok {
		return nil, false
	}
	add := func(t string) {
		if !slices.Contains(targets, t) {
			targets = append(targets, t)
		}
	}
	visiting := map[string]bool{}
	var walk func(addr string, depth int)
	walk = func(addr string, depth int) {
		next, isAlias := table[addr]
		if !isAlias || depth >= maxAliasDepth || visiting[addr] {
			add(addr)
			return
		}
		visiting[addr] = true
		defer delete(visiting, addr)
		for _, t := range next {
			if t == addr {
				add(t)
				continue
			}
			walk(t, depth+1)
		}
	}
	walk(key, 0)
	return targets, true
}

// Reaches reports whether mail to addr reaches user through an alias, so
// that user may send as addr.
func (a *Aliases) Reaches(addr, user string) bool {
	targets, ok := a.Expand(addr)
	return ok && slices.Contains(targets, Normalize(user))
}
