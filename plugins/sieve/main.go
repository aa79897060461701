// Command sieve is postline's Sieve filter (RFC 5228 and the extensions
// package postline/sieve lists), built as bin/postline-plugin-sieve and
// run at the MDA's deliver hook. For each recipient it runs the user's
// active script, the file Dovecot's Pigeonhole runs by default
// (~/.dovecot.sieve, home being the recipient's Maildir folder), so
// ManageSieve servers and their clients manage the scripts postline runs.
// It turns the script's actions into the deliver verdict: keep and
// fileinto into local copies with their IMAP flags, discard, reject and
// ereject into a refusal (the MTA then returns the message to its
// sender), redirect into mail the MTA forwards (with SRS), vacation into
// an auto-reply from <> (RFC 3834), answered once per :days per sender.
//
// A user without a script gets the implicit keep; a script that does not
// parse is logged once, with line and column, and mail goes to INBOX: a
// broken script never loses mail.
//
//	[[plugins]]
//	name = "sieve"
//	daemon = "mda"
//	[plugins.config]
//	script = "~/.dovecot.sieve"   # ~ is home
//	home = ""                     # "" = the Maildir folder; or e.g. "/home/%n" (%u address, %n local part, %d domain)
//	max_redirects = 10
//	recipient_delimiter = "+"     # for the subaddress extension
//
// Vacation memory lives in the plugin's state folder (state_dir/mda/plugins/NAME).
// It never writes to stdout: go-plugin's handshake travels there.
package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"postline/plugins/sdk"
	"postline/sieve"
)

type filter struct {
	mu       sync.Mutex
	host     sdk.Host
	cfg      *config
	scripts  *scriptCache
	vacation *vacationStore
}

func (f *filter) SetHost(h sdk.Host) { f.host = h }

func (f *filter) config() *config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg
}

func (f *filter) Configure(raw map[string]any) error {
	cfg, err := parseConfig(raw)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cfg, f.scripts = cfg, newScriptCache()
	f.vacation = &vacationStore{dir: f.host.StateDir}
	return nil
}

// DeliverBody: the body test reads it.
func (f *filter) DeliverBody() bool { return true }

func (f *filter) Deliver(ctx context.Context, d *sdk.Delivery) (sdk.Verdict, error) {
	f.mu.Lock()
	cfg, scripts, vacation := f.cfg, f.scripts, f.vacation
	f.mu.Unlock()
	path := cfg.scriptPath(d.Recipient, d.Mailbox)
	if path == "" {
		sdk.Log().Warn("no home for this address; implicit keep", "rcpt", d.Recipient)
		return sdk.Continue(), nil
	}
	script := scripts.load(path)
	if script == nil {
		return sdk.Continue(), nil // no script, or a broken one: implicit keep
	}
	in, err := input(d, cfg, vacation.memory(cfg.owner(d.Recipient)))
	if err != nil {
		sdk.Log().Warn("message header does not parse; implicit keep", "rcpt", d.Recipient, "error", err)
		return sdk.Continue(), nil
	}
	res, err := script.Run(ctx, in)
	if err != nil {
		// RFC 5228 §2.10.6: a run-time error means the implicit keep.
		sdk.Log().Warn("sieve script failed; implicit keep", "script", path, "error", err)
		return sdk.Continue(), nil
	}
	return f.verdict(res, d, vacation), nil
}

// input is the run's view of the delivery.
func input(d *sdk.Delivery, cfg *config, memory sieve.VacationMemory) (sieve.Input, error) {
	h, _, err := sieve.ParseHeader(d.RawHeader)
	if err != nil {
		return sieve.Input{}, err
	}
	return sieve.Input{
		Envelope: sieve.Envelope{From: d.Sender, To: d.Recipient},
		Header:   h,
		Body:     func() (io.Reader, error) { return d.Body, nil },
		Size:     d.Size,
		Now:      time.Now(),
		Vacation: memory,
		// RFC 5490 §3.1: a folder exists once it has a Maildir of its own.
		MailboxExists: func(name string) bool {
			folder := folderOf(name)
			if folder == "" {
				return true
			}
			_, err := os.Stat(filepath.Join(d.Mailbox, "."+folder, "cur"))
			return err == nil
		},
		Options: sieve.Options{MaxRedirects: cfg.maxRedirects, SubaddressDelimiter: cfg.delimiter},
	}, nil
}

func main() { sdk.Serve(&filter{}) }
