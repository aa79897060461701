package host

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"postline/plugins/pb"
)

// Spec is one configured plugin: a [[plugins]] table of the config file,
//
//	[[plugins]]
//	name = "antispam"
//	path = "bin/antispam"
//	daemon = "mta"
//	hooks = ["connect", "data"]
//	order = 10
//	timeout = "10s"
//	on_error = "tempfail"
//	[plugins.config]
//	reject_score = 10
type Spec struct {
	// Name tags the plugin's log lines and its 451 reply; unique per daemon.
	Name string `toml:"name"`
	// Path is the plugin's executable.
	Path string `toml:"path"`
	// Daemon is the daemon that runs it: "msa", "mta" or "mda".
	Daemon string `toml:"daemon"`
	// Hooks limits the hooks called to these; empty means every hook the
	// plugin implements that Daemon has (connect, mail, rcpt and data in
	// the msa and mta, deliver in the mda).
	Hooks []string `toml:"hooks"`
	// Order sorts a daemon's plugins, lowest first; ties keep config order.
	Order int `toml:"order"`
	// Timeout bounds every call, body streaming included; 0 is DefaultTimeout.
	Timeout time.Duration `toml:"timeout"`
	// OnError is what a call that fails (crash, timeout, error) turns
	// into: "tempfail" (451 4.7.0, the default) or "continue".
	OnError string `toml:"on_error"`
	// Config is handed to the plugin as JSON at every start.
	Config map[string]any `toml:"config"`
	// InProcess, when not nil, is a filter (as sdk.Serve takes it) run
	// inside the daemon instead of a process at Path: the bundled
	// trace-field filters, whose one header field costs far less than a
	// call to another process.
	InProcess any `toml:"-"`
}

// DefaultTimeout bounds a plugin call when Spec.Timeout is 0.
const DefaultTimeout = 10 * time.Second

// The values of Spec.OnError.
const (
	OnErrorTempfail = "tempfail"
	OnErrorContinue = "continue"
)

// Hook names a point in a message's path where plugins run.
type Hook string

// The hooks, in the order a message meets them.
const (
	HookConnect Hook = "connect"
	HookMail    Hook = "mail"
	HookRcpt    Hook = "rcpt"
	HookData    Hook = "data"
	HookDeliver Hook = "deliver"
	// HookDisconnect is called on each plugin that implements it, whatever
	// its hooks list: it only lets the plugin forget a connection.
	HookDisconnect Hook = "disconnect"
)

// hooksOf lists the hooks a daemon runs. The MDA sees no SMTP session of
// its own (its client is the MTA), so it runs deliver only.
func hooksOf(daemon string) []Hook {
	switch daemon {
	case "msa", "mta":
		return []Hook{HookConnect, HookMail, HookRcpt, HookData}
	case "mda":
		return []Hook{HookDeliver}
	}
	return nil
}

var hookProto = map[pb.Hook]Hook{
	pb.Hook_HOOK_CONNECT: HookConnect, pb.Hook_HOOK_MAIL: HookMail, pb.Hook_HOOK_RCPT: HookRcpt,
	pb.Hook_HOOK_DATA: HookData, pb.Hook_HOOK_DELIVER: HookDeliver, pb.Hook_HOOK_DISCONNECT: HookDisconnect,
}

// FieldError is one problem with one field of a Spec; Field is the TOML
// key, so the config loader can point at the line.
type FieldError struct {
	Plugin, Field, Problem string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("plugin %q: %s: %s", e.Plugin, e.Field, e.Problem)
}

// Validate reports every problem with s, each a *FieldError, joined.
func (s Spec) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Plugin: s.Name, Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	if !validName(s.Name) {
		bad("name", "must be 1-64 letters, digits, '.', '_' or '-' (it appears in SMTP replies)")
	}
	if s.Path == "" && s.InProcess == nil {
		bad("path", "name the plugin's executable")
	}
	allowed := hooksOf(s.Daemon)
	if allowed == nil {
		bad("daemon", "%q is not one of msa, mta, mda", s.Daemon)
	}
	for i, h := range s.Hooks {
		switch {
		case allowed != nil && !slices.Contains(allowed, Hook(h)):
			bad("hooks", "%q is not a hook the %s runs (%s)", h, s.Daemon, joinHooks(allowed))
		case slices.Contains(s.Hooks[:i], h):
			bad("hooks", "%q is listed twice", h)
		}
	}
	if s.Timeout < 0 {
		bad("timeout", "must be positive, e.g. \"10s\"; leave it out for %s", DefaultTimeout)
	}
	if s.OnError != "" && s.OnError != OnErrorTempfail && s.OnError != OnErrorContinue {
		bad("on_error", "%q is not %q or %q", s.OnError, OnErrorTempfail, OnErrorContinue)
	}
	if _, err := json.Marshal(s.Config); err != nil {
		bad("config", "cannot be passed to the plugin: %v", err)
	}
	return errors.Join(errs...)
}

func validName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for _, c := range n {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

func joinHooks(hs []Hook) string {
	s := make([]string, len(hs))
	for i, h := range hs {
		s[i] = string(h)
	}
	return strings.Join(s, ", ")
}

// withDefaults fills in what a config may leave out.
func (s Spec) withDefaults() Spec {
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	if s.OnError == "" {
		s.OnError = OnErrorTempfail
	}
	return s
}
