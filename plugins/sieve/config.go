package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// config is the plugin's [plugins.config] table.
type config struct {
	script       string // "~/.dovecot.sieve"
	home         string // "" = the Maildir folder, else a template
	maxRedirects int
	delimiter    string
}

func parseConfig(raw map[string]any) (*config, error) {
	c := &config{script: "~/.dovecot.sieve", maxRedirects: 10, delimiter: "+"}
	var errs []error
	for k, v := range raw {
		s, isString := v.(string)
		switch k {
		case "script":
			if !isString || s == "" || !strings.HasPrefix(s, "~/") && !filepath.IsAbs(s) {
				errs = append(errs, fmt.Errorf(`script: %#v: give "~/NAME" (in the user's home) or an absolute path`, v))
			}
			c.script = s
		case "home":
			if !isString || s != "" && !filepath.IsAbs(s) {
				errs = append(errs, fmt.Errorf(`home: %#v: give "" (the Maildir folder) or an absolute path such as "/home/%%n"`, v))
			}
			c.home = s
		case "max_redirects":
			n, ok := v.(int64)
			if !ok || n < 0 || n > 100 {
				errs = append(errs, fmt.Errorf("max_redirects: %#v: give a number from 0 to 100", v))
			}
			c.maxRedirects = int(n)
		case "recipient_delimiter":
			if !isString || len(s) > 1 {
				errs = append(errs, fmt.Errorf(`recipient_delimiter: %#v: give one character, e.g. "+"`, v))
			}
			c.delimiter = s
		default:
			errs = append(errs, fmt.Errorf("%s: unknown key (known: script, home, max_redirects, recipient_delimiter)", k))
		}
	}
	return c, errors.Join(errs...)
}

// scriptPath is the recipient's active script: script with ~ as home, or
// "" when the recipient's address cannot name a home safely. The home
// template takes the user, not the address as written: an extension
// (user+ext, the recipient delimiter) names the same home, and a "/" or
// ".." in it must not lead to another user's, or any, folder.
func (c *config) scriptPath(rcpt, mailbox string) string {
	if !strings.HasPrefix(c.script, "~/") {
		return c.script
	}
	home := mailbox
	if c.home != "" {
		user := c.owner(rcpt)
		local, domain, _ := strings.Cut(user, "@")
		if strings.ContainsAny(user, "/\\") || strings.Contains(user, "..") || local == "" || domain == "" {
			return ""
		}
		home = strings.NewReplacer("%u", user, "%n", local, "%d", domain).Replace(c.home)
	}
	return filepath.Join(home, c.script[2:])
}

// owner is the user an address belongs to: without its extension, lower case.
func (c *config) owner(rcpt string) string {
	local, domain, _ := strings.Cut(strings.ToLower(rcpt), "@")
	if c.delimiter != "" {
		local, _, _ = strings.Cut(local, c.delimiter)
	}
	return local + "@" + domain
}
