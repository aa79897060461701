package msa

import (
	"errors"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"postline/config"
	"postline/reply"
	"postline/users/userstest"
)

// newAuthSession returns a submission session over TLS (or not) whose
// users file has alice@example.test with password "secret".
func newAuthSession(t *testing.T, tls bool) *session {
	t.Helper()
	db := userstest.DB(t, "alice@example.test", "secret")
	cfg := &config.Config{MSA: config.MSA{AuthFailuresPerIP: 100, AuthFailuresPerAcc: 100,
		AuthLockout: config.Duration(time.Minute)}} // no delay, no lockout here
	return &session{b: NewBackend(cfg, db, zerolog.Nop(), nil), tls: tls, ip: "192.0.2.1", log: zerolog.Nop()}
}

// step is one client response and the server's expected answer.
type step struct {
	response  []byte
	challenge string
	done      bool
}

// runSASL plays steps against srv and returns the error of the last one.
func runSASL(t *testing.T, srv sasl.Server, steps []step) error {
	t.Helper()
	var err error
	for i, st := range steps {
		var challenge []byte
		var done bool
		challenge, done, err = srv.Next(st.response)
		if string(challenge) != st.challenge || done != st.done {
			t.Fatalf("step %d: Next(%q) = %q, done %v; want %q, done %v", i, st.response, challenge, done, st.challenge, st.done)
		}
		if err != nil && i < len(steps)-1 {
			t.Fatalf("step %d: error %v before the last step", i, err)
		}
	}
	return err
}

func TestLoginServer(t *testing.T) {
	tests := []struct {
		name     string
		steps    []step
		wantUser string // "" when the login must fail
	}{
		{"no initial response", []step{
			{nil, "Username:", false},
			{[]byte("alice@example.test"), "Password:", false},
			{[]byte("secret"), "", true},
		}, "alice@example.test"},
		{"initial response", []step{
			{[]byte("Alice@Example.TEST"), "Password:", false},
			{[]byte("secret"), "", true},
		}, "alice@example.test"},
		{"empty initial response", []step{
			{[]byte{}, "Username:", false},
			{[]byte("alice@example.test"), "Password:", false},
			{[]byte("secret"), "", true},
		}, "alice@example.test"},
		{"wrong password", []step{
			{[]byte("alice@example.test"), "Password:", false},
			{[]byte("Secret"), "", true},
		}, ""},
		{"unknown user", []step{
			{[]byte("bob@example.test"), "Password:", false},
			{[]byte("secret"), "", true},
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newAuthSession(t, true)
			srv, err := s.Auth(sasl.Login)
			if err != nil {
				t.Fatal(err)
			}
			err = runSASL(t, srv, tt.steps)
			if tt.wantUser != "" && err != nil {
				t.Errorf("login failed: %v", err)
			}
			if tt.wantUser == "" && !errors.Is(err, reply.AuthFailed) {
				t.Errorf("err = %v, want %v", err, reply.AuthFailed)
			}
			if s.user != tt.wantUser {
				t.Errorf("session user = %q, want %q", s.user, tt.wantUser)
			}
		})
	}
}

// A client that keeps talking after the exchange ended is refused.
func TestLoginServerExtraResponse(t *testing.T) {
	srv := newLoginServer(func(string, string) error { return nil })
	runSASL(t, srv, []step{{[]byte("u"), "Password:", false}, {[]byte("p"), "", true}})
	if _, done, err := srv.Next([]byte("more")); err == nil || !done {
		t.Errorf("Next after the end = done %v, err %v; want done and an error", done, err)
	}
}

func TestAuthPlain(t *testing.T) {
	tests := []struct {
		name, identity, user, pass string
		ok                         bool
	}{
		{"good", "", "alice@example.test", "secret", true},
		{"identity is the user", "alice@example.test", "alice@example.test", "secret", true},
		{"acting as another user", "bob@example.test", "alice@example.test", "secret", false},
		{"wrong password", "", "alice@example.test", "nope", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newAuthSession(t, true)
			srv, err := s.Auth(sasl.Plain)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = srv.Next([]byte(tt.identity + "\x00" + tt.user + "\x00" + tt.pass))
			if (err == nil) != tt.ok || (!tt.ok && s.user != "") {
				t.Errorf("PLAIN: err %v, user %q; want ok=%v", err, s.user, tt.ok)
			}
		})
	}
}

// No password may cross a plaintext connection: AUTH is neither offered
// nor accepted before STARTTLS.
func TestAuthNeedsTLS(t *testing.T) {
	s := newAuthSession(t, false)
	if m := s.AuthMechanisms(); len(m) != 0 {
		t.Errorf("mechanisms offered without TLS: %q", m)
	}
	for _, mech := range []string{sasl.Plain, sasl.Login} {
		if _, err := s.Auth(mech); !errors.Is(err, reply.NeedTLS) {
			t.Errorf("Auth(%s) without TLS: %v, want %v", mech, err, reply.NeedTLS)
		}
	}
	tlsSession := newAuthSession(t, true)
	_, err := tlsSession.Auth("CRAM-MD5")
	if serr := (*smtp.SMTPError)(nil); !errors.As(err, &serr) || serr.Code != 504 {
		t.Errorf("unknown mechanism: %v, want 504", err)
	}
}
