package users

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"postline/address"
)

// ErrNoSuchAlias is returned when deleting an alias the file lacks.
var ErrNoSuchAlias = errors.New("no such alias")

// SetAlias makes alias (an address, or "@domain" for a catch-all) go to
// targets in the aliases file at path: its line is replaced, or one is
// added. Comments and other lines stay as they are.
func SetAlias(path, alias string, targets []string) error {
	key, err := AliasKey(alias)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return fmt.Errorf("give where mail to %s goes: one or more addresses", alias)
	}
	for i, t := range targets {
		if _, err := address.Parse(t); err != nil {
			return fmt.Errorf("%q is not an address like user@example.org", t)
		}
		targets[i] = Normalize(t)
	}
	lines, found, err := aliasLines(path, key)
	if err != nil {
		return err
	}
	line := fmt.Sprintf("%-30s %s", key, strings.Join(targets, ", "))
	if found < 0 {
		lines = append(lines, line)
	} else {
		lines[found] = line
	}
	return replaceFile(path, []byte(strings.Join(lines, "\n")+"\n"))
}

// DeleteAlias removes alias's line from the aliases file.
func DeleteAlias(path, alias string) error {
	key, err := AliasKey(alias)
	if err != nil {
		return err
	}
	lines, found, err := aliasLines(path, key)
	if err != nil {
		return err
	}
	if found < 0 {
		return fmt.Errorf("users: %s: %w", key, ErrNoSuchAlias)
	}
	return replaceFile(path, []byte(strings.Join(append(lines[:found], lines[found+1:]...), "\n")+"\n"))
}

// aliasLines reads the file's lines and finds the one of key (-1 when
// none); a missing file has none. The file must parse: an edit never
// hides a mistake already in it.
func aliasLines(path, key string) (lines []string, found int, err error) {
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, -1, fmt.Errorf("users: %w", err)
	}
	if _, err := parseAliases(path, data); err != nil {
		return nil, -1, err
	}
	found = -1
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if len(data) == 0 {
			break
		}
		lines = append(lines, line)
		if f := aliasFields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") {
			if k, err := AliasKey(f[0]); err == nil && k == key {
				found = i
			}
		}
	}
	return lines, found, nil
}

// ListAliases returns the file's aliases as "alias  target, target"
// lines, in file order.
func ListAliases(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("users: %w", err)
	}
	if _, err := parseAliases(path, data); err != nil {
		return nil, err
	}
	var out []string
	for _, line := range bytes.Split(data, []byte("\n")) {
		if f := aliasFields(string(line)); len(f) > 1 && !strings.HasPrefix(f[0], "#") {
			k, _ := AliasKey(f[0])
			out = append(out, fmt.Sprintf("%-30s %s", k, strings.Join(f[1:], ", ")))
		}
	}
	return out, nil
}
