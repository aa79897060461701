package main

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/d--j/go-milter"

	"postline/plugins/sdk"
)

// stage is how far a conversation with a milter has come, in the order
// of the protocol (connect, HELO, MAIL, RCPT, then the message).
type stage int

const (
	stageHelo stage = iota + 1 // connect and HELO sent
	stageMail                  // MAIL sent
	stageRcpt                  // at least one RCPT sent
)

// conversation is one milter's session for one SMTP connection of the
// host. It is used by one hook call at a time.
type conversation struct {
	ep     endpoint
	s      *milter.ClientSession
	tap    *bodyTap
	macros macros
	stage  stage
	// done is set once the milter accepted or refused the message: it
	// gets nothing more until the next MAIL (libmilter: SMFIS_ACCEPT and
	// the refusals end the milter's part in the message).
	done bool
	// accepted is set when the milter accepted the whole connection
	// (SMFIS_ACCEPT at connect or HELO): it gets nothing more.
	accepted bool
}

// active reports whether the milter still takes part in the message.
func (cv *conversation) active() bool { return !cv.done && !cv.accepted }

// macroStages adds the client's address and name to go-milter's default
// macro requests, which spamd-like milters (rspamd) read.
var connectMacros = []milter.MacroName{milter.MacroMTAFQDN, milter.MacroDaemonName, milter.MacroIfAddr,
	milter.MacroClientAddr, milter.MacroClientPort, milter.MacroClientName, milter.MacroClientPTR}

// open connects to ep, negotiates protocol version 6 and its options,
// and sends the client's connection and HELO.
func open(ep endpoint, cfg *config, hostname string, c *sdk.Conn) (*conversation, milter.Action, error) {
	d := &tapDialer{dialer: net.Dialer{Timeout: cfg.connectTimeout}, timeout: cfg.commandTimeout, dir: cfg.tempDir}
	client := milter.NewClient(ep.network, ep.address, milter.WithDialer(d),
		milter.WithReadTimeout(cfg.commandTimeout), milter.WithWriteTimeout(cfg.commandTimeout),
		milter.WithMacroRequest(milter.StageConnect, connectMacros))
	macros := macros{milter.MacroMTAFQDN: hostname, milter.MacroDaemonName: "postline-" + c.Daemon}
	s, err := client.Session(macros)
	if err != nil {
		return nil, milter.Action{}, fmt.Errorf("milter %s: %w", ep.spec, err)
	}
	cv := &conversation{ep: ep, s: s, tap: d.last, macros: macros}
	act, err := cv.connect(c)
	if err != nil {
		cv.close()
		return nil, milter.Action{}, err
	}
	return cv, act, nil
}

// connect sends the connection and HELO (RFC 5321's client identity as
// libmilter's xxfi_connect and xxfi_helo see it).
func (cv *conversation) connect(c *sdk.Conn) (milter.Action, error) {
	setConnMacros(cv.macros, c)
	family, port, addr := milter.FamilyUnix, uint16(0), "localhost"
	if ip, err := netip.ParseAddr(c.ClientIP); err == nil {
		family, port, addr = milter.FamilyInet, uint16(c.ClientPort), ip.Unmap().String()
		if ip.Unmap().Is6() {
			family = milter.FamilyInet6
		}
	}
	name := c.ReverseDNS
	if name == "" {
		name = "[" + addr + "]" // Postfix's form for a client without a verified name
	}
	act, err := cv.s.Conn(name, family, port, addr)
	if err != nil || act.Type != milter.ActionContinue {
		return cv.connResult(act, err, "connect")
	}
	return cv.helo(c)
}

// connResult is result for the connection's steps, where an accept
// covers every message of the connection.
func (cv *conversation) connResult(act *milter.Action, err error, step string) (milter.Action, error) {
	a, err := cv.result(act, err, step)
	if err == nil && a.Type == milter.ActionAccept {
		cv.accepted = true
	}
	return a, err
}

// helo sends HELO again, e.g. after STARTTLS, with the TLS macros.
func (cv *conversation) helo(c *sdk.Conn) (milter.Action, error) {
	setConnMacros(cv.macros, c)
	act, err := cv.s.Helo(c.Helo)
	if err == nil && cv.stage < stageHelo {
		cv.stage = stageHelo
	}
	return cv.connResult(act, err, "helo")
}

// mail starts a message: an unfinished one is aborted first.
func (cv *conversation) mail(sender string, c *sdk.Conn) (milter.Action, error) {
	if cv.stage > stageHelo {
		if err := cv.s.Abort(nil); err != nil {
			return milter.Action{}, fmt.Errorf("milter %s: abort: %w", cv.ep.spec, err)
		}
	}
	cv.stage = stageHelo
	setConnMacros(cv.macros, c)
	cv.macros[milter.MacroMailAddr] = sender
	cv.macros[milter.MacroMailHost] = domainOf(sender)
	cv.macros[milter.MacroMailMailer] = "esmtp"
	// MAIL's parameters are not passed: go-milter sends them as one
	// string where libmilter expects one per argument.
	act, err := cv.s.Mail(sender, "")
	if err == nil {
		cv.stage = stageMail
	}
	return cv.result(act, err, "mail")
}

// rcpt sends one recipient.
func (cv *conversation) rcpt(rcpt string) (milter.Action, error) {
	cv.macros[milter.MacroRcptAddr] = rcpt
	cv.macros[milter.MacroRcptHost] = domainOf(rcpt)
	cv.macros[milter.MacroRcptMailer] = "esmtp"
	act, err := cv.s.Rcpt(rcpt, "")
	if err != nil {
		return cv.result(act, err, "rcpt")
	}
	cv.stage = stageRcpt
	switch act.Type {
	case milter.ActionReject, milter.ActionTempFail, milter.ActionRejectWithCode:
		// libmilter: a refusal at xxfi_envrcpt refuses this recipient
		// only; the message goes on with the others.
		return *act, nil
	}
	return cv.result(act, nil, "rcpt")
}

// result marks the conversation done for an answer that ends the
// milter's part in the message, and adds the milter to an error.
func (cv *conversation) result(act *milter.Action, err error, step string) (milter.Action, error) {
	if err != nil {
		return milter.Action{}, fmt.Errorf("milter %s: %s: %w", cv.ep.spec, step, err)
	}
	if act.Type != milter.ActionContinue && act.Type != milter.ActionSkip {
		cv.done = true
	}
	return *act, nil
}

func (cv *conversation) close() {
	cv.s.Close()
	cv.tap.Close()
}

// macros are the values of sendmail's macros the milters may ask for. An
// empty value is not sent at all: milters take a macro's presence, such
// as {auth_authen}'s, as a fact.
type macros map[milter.MacroName]string

func (m macros) Get(name milter.MacroName) string { return m[name] }

func (m macros) GetEx(name milter.MacroName) (string, bool) {
	v := m[name]
	return v, v != ""
}

// setConnMacros sets the macros that describe the client's session.
func setConnMacros(m macros, c *sdk.Conn) {
	m[milter.MacroClientAddr] = c.ClientIP
	m[milter.MacroClientPort] = fmt.Sprint(c.ClientPort)
	m[milter.MacroClientName] = c.ReverseDNS
	m[milter.MacroClientPTR] = c.ReverseDNS
	m[milter.MacroTlsVersion] = c.TLSVersion
	m[milter.MacroCipher] = c.TLSCipher
	m[milter.MacroAuthAuthen] = c.AuthUser
	m[milter.MacroAuthType] = ""
	if c.AuthUser != "" {
		// OpenDKIM signs for clients with an {auth_type}; the MSA takes
		// PLAIN and LOGIN, and the plugin API does not say which one.
		m[milter.MacroAuthType] = "PLAIN"
	}
	if c.QueueID != "" {
		m[milter.MacroQueueId] = c.QueueID
	}
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}
