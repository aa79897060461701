// Package sieve is postline's Sieve mail filtering language: it parses a
// user's script and decides, for one message, what should happen to it.
//
// The steps mirror the standard, each in its own file and tested alone:
// lexer.go (RFC 5228 §8.1 tokens) → parser.go (§8.2 grammar, a tree with
// line:column positions) → checker.go, spec.go, semantics.go (§3.2 require,
// §2.6 argument kinds, §2.7 comparators and match types, extension syntax)
// → interp.go, tests.go and friends (running a checked script against a
// message) → actions.go (the decisions, with the implicit keep of §2.10.2).
//
// The package never sends mail, writes files or keeps state between runs:
// Run only returns actions. The caller executes them, and implements the
// vacation memory (VacationMemory) and mailbox lookups. It imports no other
// postline package.
//
// Implemented:
//   - RFC 5228 base language: require, if/elsif/else, stop, keep, discard,
//     redirect, fileinto; tests address, header, envelope, exists, size,
//     allof, anyof, not, true, false; :is, :contains, :matches (linear time,
//     no backtracking); comparators i;octet and i;ascii-casemap; header
//     values decoded per RFC 2047; address lists per RFC 5322 §3.4 with
//     groups; duplicate actions merged (§2.10.3); encoded-character (§2.4.2.4).
//   - RFC 4790 §9.1 i;ascii-numeric; RFC 5231 relational (:count, :value).
//   - RFC 5490 mailbox (fileinto :create, mailboxexists through the caller).
//   - RFC 5429 reject and ereject, with the §2.2 conflicts.
//   - RFC 5230 vacation (:days :subject :from :addresses :mime :handle) with
//     the §4.5 rules on whom never to answer; RFC 6131 vacation-seconds.
//   - RFC 5233 subaddress (:user, :detail; delimiter configurable).
//   - RFC 3894 copy; RFC 5232 imap4flags; RFC 5173 body (:raw, :content,
//     :text); RFC 5229 variables; RFC 5260 date and currentdate.
//
// Deliberately left out: regex (draft-ietf-sieve-regex, unbounded cost),
// include (RFC 6609), enotify (RFC 5435), environment (RFC 5183), index
// (RFC 5260 §6), editheader (RFC 5293), mime/foreverypart (RFC 5703),
// duplicate (RFC 7352), spamtest/virustest (RFC 5235), the RFC 5229 §3
// namespaces, RFC 5173 §5.3's conversion of text/html to plain text, and
// RFC 5230 §4.7's use of the References field (the caller builds the reply).
package sieve
