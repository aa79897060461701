package msa

import (
	"errors"
	"time"

	"github.com/emersion/go-sasl"

	"postline/reply"
	"postline/users"
)

// loginServer is the obsolete but widespread LOGIN mechanism
// (draft-murchison-sasl-login), which go-sasl offers only as a client:
// the server asks "Username:" then "Password:".
type loginServer struct {
	authenticate func(username, password string) error
	username     string
	step         int
}

func newLoginServer(authenticate func(username, password string) error) sasl.Server {
	return &loginServer{authenticate: authenticate}
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		l.step++
		if len(response) == 0 { // no initial response: ask for the name
			return []byte("Username:"), false, nil
		}
		l.username = string(response)
		l.step++
		return []byte("Password:"), false, nil
	case 1:
		l.username = string(response)
		l.step++
		return []byte("Password:"), false, nil
	case 2:
		l.step++
		return nil, true, l.authenticate(l.username, string(response))
	}
	return nil, true, errors.New("unexpected client response")
}

// AuthMechanisms implements smtp.AuthSession: nothing before TLS, so AUTH
// is not even advertised on a plaintext connection.
func (s *session) AuthMechanisms() []string {
	if !s.tls {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth implements smtp.AuthSession.
func (s *session) Auth(mech string) (sasl.Server, error) {
	if !s.tls {
		return nil, reply.NeedTLS
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			// go-sasl does not check this; we allow no acting as another user.
			if identity != "" && identity != username {
				return reply.AuthFailed
			}
			return s.login(username, password)
		}), nil
	case sasl.Login:
		return newLoginServer(s.login), nil
	}
	return nil, reply.UnknownMech
}

// login checks a password, slowing down and locking out guessing. The
// log lines carry "ip" and "user" for fail2ban-style tools.
func (s *session) login(username, password string) error {
	account := users.Normalize(username)
	if s.b.limiter.locked(s.ip, account) {
		s.log.Warn().Str("ip", s.ip).Str("user", sanitize(account)).Msg("authentication locked out")
		s.b.Metrics.login("locked")
		return reply.AuthLocked
	}
	if !s.b.Users.Authenticate(username, password) {
		delay, nowLocked := s.b.limiter.failed(s.ip, account)
		s.log.Warn().Str("ip", s.ip).Str("user", sanitize(account)).Dur("delay", delay).Msg("authentication failed")
		if nowLocked {
			s.log.Warn().Str("ip", s.ip).Str("user", sanitize(account)).Msg("authentication lockout started")
		}
		s.b.Metrics.login("failed")
		time.Sleep(delay)
		return reply.AuthFailed
	}
	s.b.limiter.succeeded(account)
	s.user = account
	s.log = s.log.With().Str("user", s.user).Logger()
	s.log.Info().Msg("authenticated")
	s.b.Metrics.login("ok")
	return nil
}

// tokenAccount is the limiter's account for failed API tokens: a token
// names no account until it matches, so only the client's address counts
// (msa.auth_failures_per_ip), shared with its failed SMTP AUTHs.
const tokenAccount = "\x00api-token"

// TokenLocked reports whether API requests from ip are refused for now,
// after too many failed AUTHs or tokens from it.
func (b *Backend) TokenLocked(ip string) bool {
	if b.limiter.lockedIP(ip) {
		b.Log.Warn().Str("ip", ip).Msg("api token locked out")
		b.Metrics.login("locked")
		return true
	}
	return false
}

// TokenFailed counts a missing or wrong API token like a failed AUTH:
// logged for fail2ban-style tools, and delayed one second more each time.
func (b *Backend) TokenFailed(ip string) {
	delay, nowLocked := b.limiter.failed(ip, tokenAccount)
	b.limiter.succeeded(tokenAccount) // per address only
	b.Log.Warn().Str("ip", ip).Dur("delay", delay).Msg("api token refused")
	if nowLocked {
		b.Log.Warn().Str("ip", ip).Msg("authentication lockout started")
	}
	b.Metrics.login("failed")
	time.Sleep(delay)
}
