package sieve

// This file describes the commands and tests the checker accepts: their
// tags, positional arguments, nested tests and the capability each needs.

// posKind is the kind of a positional argument.
type posKind int

const (
	posString posKind = iota // exactly one string
	posList                  // a string or a string list
	posNumber
)

// tagSpec describes one tagged argument. An empty group means the tag is
// alone in its group; tags of the same group exclude each other.
type tagSpec struct {
	hasArg bool
	arg    posKind
	group  string
	ext    string
}

// spec describes a command or a test. Positional arguments that are left
// out are the leading ones (setflag [var] flags; hasflag [vars] flags).
type spec struct {
	ext    string
	isTest bool
	tags   map[string]tagSpec
	pos    []posKind
	minPos int
	tests  int // 0: none, 1: exactly one, -1: a test list
	block  bool
}

// capabilities lists what require accepts (RFC 5228 §3.2 and the
// extensions' "Capability Identifier" sections).
func capabilities() map[string]bool {
	return map[string]bool{
		"fileinto": true, "reject": true, "ereject": true, "envelope": true,
		"encoded-character": true, "vacation": true, "vacation-seconds": true,
		"subaddress": true, "comparator-i;ascii-numeric": true,
		"comparator-i;octet": true, "comparator-i;ascii-casemap": true,
		"relational": true, "imap4flags": true, "copy": true, "body": true,
		"variables": true, "mailbox": true, "date": true,
	}
}

// matchTags are COMPARATOR and MATCH-TYPE (RFC 5228 §2.7, RFC 5231 §4).
func matchTags(t map[string]tagSpec) map[string]tagSpec {
	t["comparator"] = tagSpec{hasArg: true, arg: posString}
	for _, m := range []string{"is", "contains", "matches"} {
		t[m] = tagSpec{group: "match"}
	}
	t["count"] = tagSpec{hasArg: true, arg: posString, group: "match", ext: "relational"}
	t["value"] = tagSpec{hasArg: true, arg: posString, group: "match", ext: "relational"}
	return t
}

// addressTags adds ADDRESS-PART (RFC 5228 §2.7.4, RFC 5233 §4).
func addressTags(t map[string]tagSpec) map[string]tagSpec {
	for _, m := range []string{"all", "localpart", "domain"} {
		t[m] = tagSpec{group: "addrpart"}
	}
	t["user"] = tagSpec{group: "addrpart", ext: "subaddress"}
	t["detail"] = tagSpec{group: "addrpart", ext: "subaddress"}
	return t
}

func tags() map[string]tagSpec { return map[string]tagSpec{} }

// specs returns the table of every command and test known to the checker.
func specs() map[string]*spec {
	flags := tagSpec{hasArg: true, arg: posList, ext: "imap4flags"}
	copyTag := tagSpec{ext: "copy"}
	zone := map[string]tagSpec{
		"zone":         {hasArg: true, arg: posString, group: "zone"},
		"originalzone": {group: "zone"},
	}
	m := map[string]*spec{
		// RFC 5228 §3: control commands.
		"require": {pos: []posKind{posList}, minPos: 1},
		"if":      {tests: 1, block: true},
		"elsif":   {tests: 1, block: true},
		"else":    {block: true},
		"stop":    {},
		// RFC 5228 §4 and extensions: actions.
		"keep":     {tags: map[string]tagSpec{"flags": flags}},
		"discard":  {},
		"redirect": {pos: []posKind{posString}, minPos: 1, tags: map[string]tagSpec{"copy": copyTag}},
		"fileinto": {ext: "fileinto", pos: []posKind{posString}, minPos: 1, tags: map[string]tagSpec{
			"copy": copyTag, "flags": flags, "create": {ext: "mailbox"}}},
		"reject":  {ext: "reject", pos: []posKind{posString}, minPos: 1},
		"ereject": {ext: "ereject", pos: []posKind{posString}, minPos: 1},
		"vacation": {ext: "vacation", pos: []posKind{posString}, minPos: 1, tags: map[string]tagSpec{
			"days":      {hasArg: true, arg: posNumber, group: "period"},
			"seconds":   {hasArg: true, arg: posNumber, group: "period", ext: "vacation-seconds"},
			"subject":   {hasArg: true, arg: posString},
			"from":      {hasArg: true, arg: posString},
			"addresses": {hasArg: true, arg: posList},
			"mime":      {},
			"handle":    {hasArg: true, arg: posString},
		}},
		// RFC 5232 §3: flag commands.
		"setflag":    {ext: "imap4flags", pos: []posKind{posString, posList}, minPos: 1},
		"addflag":    {ext: "imap4flags", pos: []posKind{posString, posList}, minPos: 1},
		"removeflag": {ext: "imap4flags", pos: []posKind{posString, posList}, minPos: 1},
		// RFC 5229 §4: set.
		"set": {ext: "variables", pos: []posKind{posString, posString}, minPos: 2, tags: setTags()},
	}
	addTests(m, zone)
	return m
}

// setTags are the modifiers of set (RFC 5229 §4.1), grouped by precedence.
func setTags() map[string]tagSpec {
	return map[string]tagSpec{
		"lower": {group: "p40"}, "upper": {group: "p40"},
		"lowerfirst": {group: "p30"}, "upperfirst": {group: "p30"},
		"quotewildcard": {group: "p20"}, "length": {group: "p10"},
	}
}

// addTests adds the tests of RFC 5228 §5 and of the extensions.
func addTests(m map[string]*spec, zone map[string]tagSpec) {
	m["address"] = &spec{isTest: true, pos: []posKind{posList, posList}, minPos: 2, tags: addressTags(matchTags(tags()))}
	m["envelope"] = &spec{isTest: true, ext: "envelope", pos: []posKind{posList, posList}, minPos: 2, tags: addressTags(matchTags(tags()))}
	m["header"] = &spec{isTest: true, pos: []posKind{posList, posList}, minPos: 2, tags: matchTags(tags())}
	m["exists"] = &spec{isTest: true, pos: []posKind{posList}, minPos: 1}
	m["size"] = &spec{isTest: true, pos: []posKind{posNumber}, minPos: 1, tags: map[string]tagSpec{
		"over": {group: "size"}, "under": {group: "size"}}}
	m["allof"] = &spec{isTest: true, tests: -1}
	m["anyof"] = &spec{isTest: true, tests: -1}
	m["not"] = &spec{isTest: true, tests: 1}
	m["true"] = &spec{isTest: true}
	m["false"] = &spec{isTest: true}
	m["string"] = &spec{isTest: true, ext: "variables", pos: []posKind{posList, posList}, minPos: 2, tags: matchTags(tags())}
	m["hasflag"] = &spec{isTest: true, ext: "imap4flags", pos: []posKind{posList, posList}, minPos: 1, tags: matchTags(tags())}
	body := matchTags(tags())
	body["raw"] = tagSpec{group: "transform"}
	body["text"] = tagSpec{group: "transform"}
	body["content"] = tagSpec{hasArg: true, arg: posList, group: "transform"}
	m["body"] = &spec{isTest: true, ext: "body", pos: []posKind{posList}, minPos: 1, tags: body}
	date := matchTags(tags())
	for k, v := range zone {
		date[k] = v
	}
	m["date"] = &spec{isTest: true, ext: "date", pos: []posKind{posString, posString, posList}, minPos: 3, tags: date}
	cur := matchTags(tags())
	cur["zone"] = zone["zone"]
	m["currentdate"] = &spec{isTest: true, ext: "date", pos: []posKind{posString, posList}, minPos: 2, tags: cur}
	m["mailboxexists"] = &spec{isTest: true, ext: "mailbox", pos: []posKind{posList}, minPos: 1}
}
