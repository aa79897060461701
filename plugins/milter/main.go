// Command milter is postline's bridge to milters, the mail filters
// Postfix and sendmail run (rspamd, OpenDKIM, ClamAV, OpenDMARC), built
// as bin/postline-plugin-milter. At the MSA's or MTA's connect, mail, rcpt
// and data hooks it speaks the milter protocol (version 6, with option
// negotiation, through github.com/d--j/go-milter) to each configured
// milter in order, and maps their answers onto postline's verdicts:
//
//	accept, continue          no objection (the next plugin runs)
//	reject, tempfail          550 5.7.1 / 451 4.7.1, or the milter's own reply (SMFIR_REPLYCODE)
//	discard                   accepted and dropped
//	quarantine                filed into quarantine_folder (Junk)
//	add/insert/change header  header edits
//	change sender, add/delete recipient   envelope edits (data hook)
//	replace body              a new body, streamed to disk, never held whole
//
// A milter that is down, times out or speaks garbage fails the hook call,
// which the host answers per the plugin's on_error: tempfail (451 4.7.0)
// by default, as Postfix's milter_default_action; "continue" lets mail
// through unfiltered. The sessions of an SMTP connection live from its
// connect hook to the end of its message; a rcpt refusal refuses that
// recipient only, as with Postfix.
//
//	[[plugins]]
//	name = "rspamd"
//	daemon = "mta"                 # or "msa"
//	timeout = "30s"                # above command_timeout
//	on_error = "tempfail"
//	[plugins.config]
//	milters = ["inet:127.0.0.1:11332"]   # or "unix:/run/opendkim/opendkim.sock"; in order
//	quarantine_folder = "Junk"
//	connect_timeout = "5s"
//	command_timeout = "10s"        # per milter command
//
// Differences from Postfix: the milters after the first see the message
// as received, not with the earlier ones' changes (the changes are all
// applied, in order); MAIL FROM parameters are not passed. It never
// writes to stdout: go-plugin's handshake travels there.
package main

import (
	"context"
	"io"
	"sync"

	"github.com/d--j/go-milter"

	"postline/plugins/sdk"
)

type bridge struct {
	mu       sync.Mutex
	hostname string
	stateDir string
	cfg      *config
	conns    table
}

func (b *bridge) SetHost(h sdk.Host) { b.hostname, b.stateDir = h.Hostname, h.StateDir }

func (b *bridge) Configure(raw map[string]any) error {
	cfg, err := parseConfig(raw)
	if err != nil {
		return err
	}
	cfg.tempDir = b.stateDir
	b.mu.Lock()
	b.cfg = cfg
	b.mu.Unlock()
	return nil
}

func (b *bridge) config() *config {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cfg
}

// ReplacesBody: a milter may send a new body at the end of a message.
func (b *bridge) ReplacesBody() bool { return true }

// Connect opens the milter sessions of a new SMTP connection, or sends
// HELO again on the sessions of one that said EHLO anew after STARTTLS.
func (b *bridge) Connect(_ context.Context, c *sdk.Conn) (sdk.Verdict, error) {
	if conn := b.conns.get(key(c)); conn != nil {
		if afterSTARTTLS(conn, c) {
			defer conn.mu.Unlock()
			conn.tls = c.TLSVersion
			return b.each(conn, func(cv *conversation) (milter.Action, error) { return cv.helo(c) })
		}
		// Sessions left by an earlier connection from this address and
		// port, which went away: start afresh.
		conn.close()
		conn.mu.Unlock()
	}
	conn, v, err := b.sessions(c)
	if conn != nil {
		conn.mu.Unlock()
	}
	return v, err
}

// afterSTARTTLS reports whether c is conn's client saying EHLO again
// after STARTTLS (RFC 3207 §4.2): plaintext before, TLS now, no MAIL yet.
func afterSTARTTLS(conn *connection, c *sdk.Conn) bool {
	if len(conn.convs) == 0 || conn.tls != "" || c.TLSVersion == "" {
		return false
	}
	for _, cv := range conn.convs {
		if cv.stage >= stageMail {
			return false
		}
	}
	return true
}

// Disconnect ends the milter sessions of an SMTP connection that went
// away before its message's end (a client refused at RCPT, say), rather
// than leave them open, each a thread of a libmilter milter, until idle.
func (b *bridge) Disconnect(_ context.Context, c *sdk.Conn) error {
	if conn := b.conns.take(key(c)); conn != nil {
		conn.close()
		conn.dead = true
		conn.mu.Unlock()
	}
	return nil
}

// Mail sends MAIL FROM to each milter, after an abort of a message that
// did not reach its end.
func (b *bridge) Mail(_ context.Context, m *sdk.Mail) (sdk.Verdict, error) {
	conn, v, err := b.sessions(m.Conn)
	if conn == nil {
		return v, err
	}
	defer conn.mu.Unlock()
	return b.mail(conn, m.Sender, m.Conn)
}

// mail starts a message with every milter that did not accept the whole
// connection, whatever each said of the last message.
func (b *bridge) mail(conn *connection, sender string, c *sdk.Conn) (sdk.Verdict, error) {
	for _, cv := range conn.convs {
		cv.done = false
	}
	return b.each(conn, func(cv *conversation) (milter.Action, error) { return cv.mail(sender, c) })
}

// Rcpt sends one RCPT TO; a refusal refuses this recipient only.
func (b *bridge) Rcpt(_ context.Context, r *sdk.Rcpt) (sdk.Verdict, error) {
	conn, v, err := b.sessions(r.Conn)
	if conn == nil {
		return v, err
	}
	defer conn.mu.Unlock()
	if needsMail(conn) {
		if v, err := b.mail(conn, r.Sender, r.Conn); err != nil || refused(v) {
			return v, err
		}
	}
	return b.each(conn, func(cv *conversation) (milter.Action, error) { return cv.rcpt(r.Recipient) })
}

// Data finishes the message with every milter still in it: the header,
// the body in lockstep (each piece goes to every milter before the next
// is read, so the body is read once), the end of message. The sessions
// end with it. Sessions that missed MAIL or RCPT (no such hooks, or a
// restarted plugin) get them first; a recipient refused then refuses
// the whole message, which is the only answer left after DATA.
func (b *bridge) Data(_ context.Context, m *sdk.Message) (sdk.Verdict, error) {
	conn := b.conns.take(key(m.Conn))
	if conn == nil {
		conn = &connection{}
		conn.mu.Lock()
	}
	if len(conn.convs) == 0 {
		if v, err := b.openAll(conn, m.Conn); err != nil || refused(v) {
			conn.mu.Unlock()
			return v, err
		}
	}
	defer func() {
		conn.close()
		conn.mu.Unlock()
	}()
	if v, err := b.catchUp(conn, m); err != nil || refused(v) {
		return v, err
	}
	return b.message(conn, m)
}

// catchUp sends MAIL and every RCPT to sessions that have not had them.
func (b *bridge) catchUp(conn *connection, m *sdk.Message) (sdk.Verdict, error) {
	if needsMail(conn) {
		if v, err := b.mail(conn, m.Sender, m.Conn); err != nil || refused(v) {
			return v, err
		}
	}
	for _, cv := range conn.convs {
		if !cv.active() || cv.stage >= stageRcpt {
			continue
		}
		for _, r := range m.Recipients {
			act, err := cv.rcpt(r)
			if err != nil {
				return sdk.Verdict{}, err
			}
			if v, ok := refusal(act); ok {
				return v, nil
			}
		}
	}
	return sdk.Continue(), nil
}

// message sends the header and the body and ends the message.
func (b *bridge) message(conn *connection, m *sdk.Message) (sdk.Verdict, error) {
	setMessageMacros(conn, m.Conn)
	if v, err := b.each(conn, func(cv *conversation) (milter.Action, error) { return cv.sendHeader(m.RawHeader) }); err != nil || refused(v) || allDone(conn) {
		return v, err
	}
	if v, err := b.sendBody(conn, m.Body); err != nil || refused(v) || allDone(conn) {
		return v, err
	}
	return b.endAll(conn)
}

// sendBody sends the body in lockstep. An empty body still goes as one
// empty chunk: go-milter ends no message that had no body chunk.
func (b *bridge) sendBody(conn *connection, body io.Reader) (sdk.Verdict, error) {
	v, sent := sdk.Continue(), false
	err := readChunks(body, func(chunk []byte) (bool, error) {
		var err error
		v, err = b.each(conn, func(cv *conversation) (milter.Action, error) { return cv.sendChunk(chunk) })
		sent = true
		return err == nil && !refused(v) && !allDone(conn), err
	})
	if err == nil && !sent {
		v, err = b.each(conn, func(cv *conversation) (milter.Action, error) { return cv.sendChunk(nil) })
	}
	return v, err
}

// endAll ends the message with each milter still in it, in order, until
// one refuses; the verdict holds the changes of all up to it.
func (b *bridge) endAll(conn *connection) (sdk.Verdict, error) {
	var outs []outcome
	for _, cv := range conn.convs {
		if !cv.active() {
			continue
		}
		out, err := cv.end()
		if err != nil {
			closeBodies(outs)
			conn.close()
			return sdk.Verdict{}, err
		}
		outs = append(outs, out)
		if refused(verdictOf([]outcome{{action: out.action}}, "")) {
			break
		}
	}
	return verdictOf(outs, b.config().quarantineFolder), nil
}

// setMessageMacros gives every session the macros known at the end of
// DATA, the queue ID above all.
func setMessageMacros(conn *connection, c *sdk.Conn) {
	for _, cv := range conn.convs {
		setConnMacros(cv.macros, c)
	}
}

func allDone(conn *connection) bool {
	for _, cv := range conn.convs {
		if cv.active() {
			return false
		}
	}
	return true
}

// refused reports whether v ends the transaction: a refusal or a discard.
func refused(v sdk.Verdict) bool { return v.Refuses() || v.Discards() }

func main() { sdk.Serve(&bridge{}) }
