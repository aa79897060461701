package main

import (
	"github.com/d--j/go-milter"

	"postline/plugins/sdk"
)

// sessions returns the connection's sessions, locked, opening them when
// there are none: the plugin was restarted, the connect hook is off, or
// an error closed them.
func (b *bridge) sessions(c *sdk.Conn) (*connection, sdk.Verdict, error) {
	k := key(c)
	conn := b.conns.get(k)
	if conn == nil {
		conn = &connection{}
		conn.mu.Lock()
		b.conns.put(k, conn)
	}
	if len(conn.convs) > 0 {
		return conn, sdk.Verdict{}, nil
	}
	if v, err := b.openAll(conn, c); err != nil || refused(v) {
		conn.mu.Unlock()
		return nil, v, err
	}
	return conn, sdk.Verdict{}, nil
}

// openAll opens a session with each milter; on an error or a refusal
// every session opened is closed.
func (b *bridge) openAll(conn *connection, c *sdk.Conn) (sdk.Verdict, error) {
	cfg := b.config()
	conn.tls = c.TLSVersion
	for _, ep := range cfg.milters {
		cv, act, err := open(ep, cfg, b.hostname, c)
		if err != nil {
			conn.close()
			return sdk.Verdict{}, err
		}
		conn.convs = append(conn.convs, cv)
		if v, ok := refusal(act); ok {
			conn.close()
			return v, nil
		}
	}
	return sdk.Continue(), nil
}

// each runs step on every milter still in the message, in order, and
// stops at the first refusal. An error closes every session, so that the
// next hook call opens new ones.
func (b *bridge) each(conn *connection, step func(*conversation) (milter.Action, error)) (sdk.Verdict, error) {
	for _, cv := range conn.convs {
		if !cv.active() {
			continue
		}
		act, err := step(cv)
		if err != nil {
			conn.close()
			return sdk.Verdict{}, err
		}
		if v, ok := refusal(act); ok {
			return v, nil
		}
	}
	return sdk.Continue(), nil
}

// needsMail reports whether a session has not had MAIL for this message.
func needsMail(conn *connection) bool {
	for _, cv := range conn.convs {
		if cv.stage < stageMail {
			return true
		}
	}
	return false
}
