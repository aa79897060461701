package users

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
)

// The users, tokens and webhooks files share one shape: a record per
// line, blank lines and # comments skipped, a bad line named by number.

// readFile returns what the file at path holds; a missing file holds
// nothing. what names the file in an error.
func readFile(path, what string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return data, nil
}

// records parses each line of data that is neither blank nor a comment,
// trimmed, and returns the records in order; the first line parse refuses
// is the error, as "path:N: " and parse's words.
func records[T any](path string, data []byte, parse func(line string) (T, error)) ([]T, error) {
	var out []T
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r, err := parse(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// byKey indexes list by key; a later record of a key wins.
func byKey[T any](list []T, key func(T) string) map[string]T {
	m := make(map[string]T, len(list))
	for _, r := range list {
		m[key(r)] = r
	}
	return m
}
