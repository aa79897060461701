package users

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// API tokens of the MSA's HTTP submission API (docs/http-api.md), kept in
// one file beside the users file, a line per token:
//
//	alice@example.test 3f9a1c2b7d4e sha256:<64 hex digits> 2026-05-01T10:00:00Z
//
// (user, token ID, hash, creation time). Only the SHA-256 of a token is
// stored, never the token. A plain hash is enough here where a password
// needs bcrypt: a token is 32 random bytes (256 bits), so guessing it from
// its hash is as hopeless as guessing it outright, and the cost bcrypt
// adds to protect low-entropy passwords would be paid on every request.

// TokenPrefix starts every token, so that one pasted where it should not
// be is recognized (secret scanners, logs).
const TokenPrefix = "pl_"

// ErrNoSuchToken is returned by TokenFile.Remove for an ID the user has not.
var ErrNoSuchToken = errors.New("no such token")

// Token is one stored token: never its secret.
type Token struct {
	User    string
	ID      string // the first 12 hex digits of the hash, to name it
	Hash    string // hex SHA-256 of the secret
	Created time.Time
}

// Tokens answers "whose token is this" from the tokens file, reading it
// again when it changes, as DB does the users file.
type Tokens struct {
	file watched[map[string]Token] // hash → token
}

// OpenTokens returns the tokens of the file at path; a missing file has none.
func OpenTokens(path string) (*Tokens, error) {
	t := &Tokens{file: watched[map[string]Token]{path: path, parse: parseTokenMap}}
	if err := t.file.refresh(); err != nil {
		return nil, err
	}
	return t, nil
}

// Lookup returns the user a secret token belongs to. The secret is
// hashed first, so the map lookup's timing tells nothing about it.
func (t *Tokens) Lookup(secret string) (Token, bool) {
	if !strings.HasPrefix(secret, TokenPrefix) {
		return Token{}, false
	}
	tok, ok := t.file.get()[hashToken(secret)]
	return tok, ok
}

func hashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func parseTokenMap(path string, data []byte) (map[string]Token, error) {
	list, err := parseTokens(path, data)
	return byKey(list, func(t Token) string { return t.Hash }), err
}

var errTokenLine = errors.New(`expected "address id sha256:HASH created"; remove the line and make a new token with ` + "`postline token add`")

func parseTokens(path string, data []byte) ([]Token, error) {
	return records(path, data, func(line string) (Token, error) {
		f := strings.Fields(line)
		hash, ok := "", len(f) == 4
		if ok {
			hash, ok = strings.CutPrefix(f[2], "sha256:")
		}
		created, err := time.Parse(time.RFC3339, f[len(f)-1])
		if !ok || len(hash) != 64 || err != nil {
			return Token{}, errTokenLine
		}
		return Token{User: Normalize(f[0]), ID: f[1], Hash: hash, Created: created}, nil
	})
}

func readTokens(path string) ([]Token, error) {
	data, err := readFile(path, "tokens")
	if err != nil {
		return nil, err
	}
	return parseTokens(path, data)
}

// TokenFile is the tokens file as `postline token` edits it.
type TokenFile struct {
	Path string
	// Like is the file whose owner and group a new tokens file takes:
	// the users file, which the daemons already read.
	Like string
}

// Add makes a new token for user, stores its hash and returns the
// secret, which nobody can learn again.
func (f TokenFile) Add(user string, now time.Time) (secret string, tok Token, err error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", Token{}, fmt.Errorf("tokens: random: %w", err)
	}
	secret = TokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	hash := hashToken(secret)
	tok = Token{User: Normalize(user), ID: hash[:12], Hash: hash, Created: now.UTC().Truncate(time.Second)}
	list, err := readTokens(f.Path)
	if err != nil {
		return "", Token{}, err
	}
	if err := f.write(append(list, tok)); err != nil {
		return "", Token{}, err
	}
	return secret, tok, nil
}

// List returns user's tokens ("" for everyone's), oldest first.
func (f TokenFile) List(user string) ([]Token, error) {
	list, err := readTokens(f.Path)
	var out []Token
	for _, t := range list {
		if user == "" || t.User == Normalize(user) {
			out = append(out, t)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// Remove removes user's token id.
func (f TokenFile) Remove(user, id string) error {
	list, err := readTokens(f.Path)
	if err != nil {
		return err
	}
	user = Normalize(user)
	var keep []Token
	for _, t := range list {
		if t.User != user || t.ID != id {
			keep = append(keep, t)
		}
	}
	if len(keep) == len(list) {
		return fmt.Errorf("tokens: %s of %s: %w", id, user, ErrNoSuchToken)
	}
	return f.write(keep)
}

func (f TokenFile) write(list []Token) error {
	var buf bytes.Buffer
	buf.WriteString("# postline API tokens: user, ID, SHA-256 of the token, created. Edit with `postline token`.\n")
	for _, t := range list {
		fmt.Fprintf(&buf, "%s %s sha256:%s %s\n", t.User, t.ID, t.Hash, t.Created.Format(time.RFC3339))
	}
	return replaceFileLike(f.Path, f.Like, buf.Bytes())
}
