package main

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"postline/plugins/pb"
	"postline/plugins/sdk"
)

func TestParseConfigValid(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  map[string]any
		want *config
	}{
		{"defaults", map[string]any{"milters": []any{"inet:127.0.0.1:11332"}},
			&config{milters: []endpoint{{"inet:127.0.0.1:11332", "tcp", "127.0.0.1:11332"}},
				quarantineFolder: "Junk", connectTimeout: 5 * time.Second, commandTimeout: 10 * time.Second}},
		{"everything", map[string]any{
			"milters":           []any{"unix:/run/opendkim/opendkim.sock", "inet:localhost:8891", "inet6:[::1]:11332"},
			"quarantine_folder": "Spam.Held",
			"connect_timeout":   "1500ms",
			"command_timeout":   "1m",
		}, &config{milters: []endpoint{
			{"unix:/run/opendkim/opendkim.sock", "unix", "/run/opendkim/opendkim.sock"},
			{"inet:localhost:8891", "tcp", "localhost:8891"},
			{"inet6:[::1]:11332", "tcp", "[::1]:11332"},
		}, quarantineFolder: "Spam.Held", connectTimeout: 1500 * time.Millisecond, commandTimeout: time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfig(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// Each mistake is reported with the key and how to put it right.
func TestParseConfigErrors(t *testing.T) {
	ok := []any{"inet:127.0.0.1:11332"}
	for _, tc := range []struct {
		name string
		raw  map[string]any
		want []string // parts of the error
	}{
		{"no config", nil, []string{"milters: give at least one", `"inet:127.0.0.1:11332"`}},
		{"no milters", map[string]any{"milters": []any{}}, []string{"milters: give at least one"}},
		{"milters not a list", map[string]any{"milters": "inet:127.0.0.1:11332"}, []string{"milters: give at least one"}},
		{"unknown scheme", map[string]any{"milters": []any{"tcp:x"}},
			[]string{`milters: "tcp:x"`, `give "inet:host:port" or "unix:/path/to/socket"`}},
		{"relative socket", map[string]any{"milters": []any{"unix:relative"}},
			[]string{`milters: "unix:relative"`, `"unix:/path/to/socket"`}},
		{"no port", map[string]any{"milters": []any{"inet:localhost"}}, []string{`milters: "inet:localhost"`, `"inet:host:port"`}},
		{"one bad of two", map[string]any{"milters": []any{"inet:127.0.0.1:11332", "local:/x"}}, []string{`milters: "local:/x"`}},
		{"bad connect_timeout", map[string]any{"milters": ok, "connect_timeout": "5"},
			[]string{`connect_timeout: "5" is not a positive duration`, `"10s"`}},
		{"zero command_timeout", map[string]any{"milters": ok, "command_timeout": "0s"},
			[]string{`command_timeout: "0s" is not a positive duration`, `"10s"`}},
		{"negative command_timeout", map[string]any{"milters": ok, "command_timeout": "-1s"},
			[]string{`command_timeout: "-1s" is not a positive duration`}},
		{"unknown key", map[string]any{"milters": ok, "milter_timeout": "5s"},
			[]string{"milter_timeout: unknown key", "known: milters, quarantine_folder, connect_timeout, command_timeout"}},
		{"folder with a slash", map[string]any{"milters": ok, "quarantine_folder": "../Junk"},
			[]string{`quarantine_folder: "../Junk" is not a Maildir++ folder name`, `"Junk"`}},
		{"empty folder", map[string]any{"milters": ok, "quarantine_folder": ""},
			[]string{`quarantine_folder: "" is not a Maildir++ folder name`}},
		{"folder with a leading dot", map[string]any{"milters": ok, "quarantine_folder": ".Junk"},
			[]string{`quarantine_folder: ".Junk"`}},
		{"every mistake at once", map[string]any{"milters": []any{"tcp:x"}, "connect_timeout": "soon", "quarantine_folder": "a/b", "x": 1},
			[]string{`milters: "tcp:x"`, "connect_timeout:", "quarantine_folder:", "x: unknown key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(tc.raw)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// A bad config fails Configure, which stops the daemon's start.
func TestConfigureRejectsBadConfig(t *testing.T) {
	cl := sdk.Direct(&bridge{})
	_, err := cl.Configure(context.Background(), &pb.ConfigureRequest{Name: "milter", Daemon: "mta",
		ConfigJson: []byte(`{"milters": ["tcp:x"]}`)})
	if err == nil || !strings.Contains(err.Error(), `milters: \"tcp:x\"`) && !strings.Contains(err.Error(), `milters: "tcp:x"`) {
		t.Errorf("Configure: %v", err)
	}
}
