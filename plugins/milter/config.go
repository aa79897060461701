package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"postline/plugins/host"
)

// config is the plugin's [plugins.config] table.
type config struct {
	milters          []endpoint
	quarantineFolder string
	connectTimeout   time.Duration
	commandTimeout   time.Duration
	tempDir          string // for new bodies: the plugin's state folder, on disk, "" for the system's
}

// endpoint is one milter's socket in Postfix's notation.
type endpoint struct {
	spec    string // as configured, for logs and replies
	network string // "tcp" or "unix"
	address string
}

func parseConfig(raw map[string]any) (*config, error) {
	c := &config{quarantineFolder: "Junk", connectTimeout: 5 * time.Second, commandTimeout: 10 * time.Second}
	var errs []error
	list, _ := raw["milters"].([]any)
	if len(list) == 0 {
		errs = append(errs, errors.New(`milters: give at least one, e.g. milters = ["inet:127.0.0.1:11332"]`))
	}
	for _, m := range list {
		s, _ := m.(string)
		e, err := parseEndpoint(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.milters = append(c.milters, e)
	}
	if f, ok := raw["quarantine_folder"]; ok {
		s, _ := f.(string)
		if !host.ValidFolder(s) {
			errs = append(errs, fmt.Errorf("quarantine_folder: %#v is not a Maildir++ folder name (e.g. \"Junk\")", f))
		}
		c.quarantineFolder = s
	}
	errs = append(errs, duration(raw, "connect_timeout", &c.connectTimeout), duration(raw, "command_timeout", &c.commandTimeout))
	for k := range raw {
		switch k {
		case "milters", "quarantine_folder", "connect_timeout", "command_timeout":
		default:
			errs = append(errs, fmt.Errorf("%s: unknown key (known: milters, quarantine_folder, connect_timeout, command_timeout)", k))
		}
	}
	return c, errors.Join(errs...)
}

// parseEndpoint reads "inet:host:port" or "unix:/path", as Postfix's
// smtpd_milters does; "inet6:host:port" is taken too.
func parseEndpoint(s string) (endpoint, error) {
	kind, addr, ok := strings.Cut(s, ":")
	switch {
	case ok && kind == "unix" && strings.HasPrefix(addr, "/"):
		return endpoint{s, "unix", addr}, nil
	case ok && (kind == "inet" || kind == "inet6") && strings.Contains(addr, ":"):
		return endpoint{s, "tcp", addr}, nil
	}
	return endpoint{}, fmt.Errorf(`milters: %q: give "inet:host:port" or "unix:/path/to/socket"`, s)
}

func duration(raw map[string]any, key string, dst *time.Duration) error {
	v, ok := raw[key]
	if !ok {
		return nil
	}
	s, _ := v.(string)
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("%s: %#v is not a positive duration (e.g. \"10s\")", key, v)
	}
	*dst = d
	return nil
}
