package smtp_test

import (
	"github.com/emersion/go-smtp"
	"io"
	"strings"
	"testing"
	"time"
)

// [postline patch] the error limit ends the session with 421 4.7.0, and
// MaxCommands bounds a session's commands.
func TestSessionLimits(t *testing.T) {
	_, s, c, scanner := testServerAuthenticated(t)
	defer s.Close()
	defer c.Close()
	s.MaxErrors = 2
	for i := 0; i < 3; i++ {
		io.WriteString(c, "BOGUS\r\n")
		scanner.Scan()
	}
	scanner.Scan()
	if !strings.HasPrefix(scanner.Text(), "421 4.7.0 ") {
		t.Errorf("after too many errors: %q, want 421 4.7.0", scanner.Text())
	}

	_, s2, c2, scanner2 := testServerAuthenticated(t)
	defer s2.Close()
	defer c2.Close()
	s2.MaxCommands = 5 // EHLO and AUTH were two
	var replies []string
	for i := 0; i < 5; i++ {
		io.WriteString(c2, "NOOP\r\n")
		scanner2.Scan()
		replies = append(replies, scanner2.Text())
	}
	if !strings.HasPrefix(replies[2], "250 ") || !strings.HasPrefix(replies[3], "421 4.7.0 ") {
		t.Errorf("replies to NOOPs: %q, want the 4th to be 421 4.7.0", replies)
	}
}

// [postline patch] extra MAIL FROM parameters named in Server.MailParams
// reach the session in MailOptions.Params; the client sends its Params.
func TestMailParams(t *testing.T) {
	be, s, c, scanner := testServerAuthenticated(t)
	defer s.Close()
	defer c.Close()
	s.MailParams = []string{"X-POSTLINE-ID"}
	io.WriteString(c, "MAIL FROM:<root@nsa.gov> X-POSTLINE-ID=abc+2B1\r\n")
	scanner.Scan()
	if !strings.HasPrefix(scanner.Text(), "250 ") {
		t.Fatalf("MAIL with a known parameter: %q", scanner.Text())
	}
	io.WriteString(c, "RCPT TO:<root@gchq.gov.uk>\r\n")
	scanner.Scan()
	io.WriteString(c, "DATA\r\n")
	scanner.Scan()
	io.WriteString(c, "Hey <3\r\n.\r\n")
	scanner.Scan()
	if len(be.messages) != 1 || be.messages[0].Opts.Params["X-POSTLINE-ID"] != "abc+1" {
		t.Fatalf("params: %+v", be.messages)
	}
	io.WriteString(c, "MAIL FROM:<root@nsa.gov> X-OTHER=1\r\n")
	scanner.Scan()
	if !strings.HasPrefix(scanner.Text(), "500 ") {
		t.Errorf("MAIL with an unknown parameter: %q, want 500", scanner.Text())
	}
	io.WriteString(c, "MAIL FROM:<root@nsa.gov> X-POSTLINE-ID=a+0A\r\n")
	scanner.Scan()
	if !strings.HasPrefix(scanner.Text(), "501 ") {
		t.Errorf("MAIL with a control character: %q, want 501", scanner.Text())
	}

	// the client
	be2, s2, c2, _ := testServer(t, func(s *smtp.Server) {
		s.MailParams = []string{"X-POSTLINE-ID"}
	})
	defer s2.Close()
	cl := smtp.NewClient(c2)
	defer cl.Close()
	if err := cl.Mail("a@example.com", &smtp.MailOptions{Params: map[string]string{"X-POSTLINE-ID": "q=1 2"}}); err != nil {
		t.Fatal(err)
	}
	if err := cl.Rcpt("b@example.com", nil); err != nil {
		t.Fatal(err)
	}
	w, err := cl.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "x\r\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(be2.anonmsgs) != 1 || be2.anonmsgs[0].Opts.Params["X-POSTLINE-ID"] != "q=1 2" {
		t.Fatalf("client params: %+v", be2.anonmsgs)
	}
	if err := cl.Mail("a@example.com", &smtp.MailOptions{Params: map[string]string{"X-POSTLINE-ID": "a\nb"}}); err == nil {
		t.Error("client sent a control character")
	}
	if err := cl.Mail("a@example.com", &smtp.MailOptions{Params: map[string]string{"X ID": "a"}}); err == nil {
		t.Error("client sent a bad parameter name")
	}
}

// [postline patch] the replies to a pipelined group (RFC 2920) leave in
// one write; a reply is not held for a command line that has not
// arrived whole.
func TestPipelinedRepliesInOneWrite(t *testing.T) {
	_, s, c, _ := testServerAuthenticated(t)
	defer s.Close()
	defer c.Close()
	io.WriteString(c, "MAIL FROM:<root@nsa.gov>\r\nRCPT TO:<root@gchq.gov.uk>\r\nRCPT TO:<root@bnd.de>\r\nDATA\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if got := strings.Count(string(buf[:n]), "\r\n"); err != nil || got != 4 || !strings.HasPrefix(string(buf[:n]), "250 ") {
		t.Fatalf("first read: %q, %v; want the four replies at once", buf[:n], err)
	}
	io.WriteString(c, "Hey\r\n.\r\nRSET\r\nMAIL FROM:<root@nsa.gov>\r\nRCPT TO:<root@gchq")
	for got := ""; !strings.Contains(got, "250 2.0.0 Session reset") || !strings.HasSuffix(got, "\r\n250 2.0.0 Roger, accepting mail from <root@nsa.gov>\r\n"); {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("replies before the rest of RCPT arrived: %q, %v", got, err)
		}
		got += string(buf[:n])
	}
}

// [postline patch] Server.Replies replaces upstream's texts for the
// replies the server writes on its own.
func TestServerReplies(t *testing.T) {
	ok := func(code int, enh smtp.EnhancedCode, text string) smtp.SMTPError {
		return smtp.SMTPError{Code: code, EnhancedCode: enh, Message: text}
	}
	replies := &smtp.Replies{
		Mail: ok(250, smtp.EnhancedCode{2, 1, 0}, "Ok"), Rcpt: ok(250, smtp.EnhancedCode{2, 1, 5}, "Ok"),
		Data:  ok(354, smtp.NoEnhancedCode, "End data with <CR><LF>.<CR><LF>"),
		Reset: ok(250, smtp.EnhancedCode{2, 0, 0}, "Ok"), Noop: ok(250, smtp.EnhancedCode{2, 0, 0}, "Ok"),
		Vrfy: ok(252, smtp.EnhancedCode{2, 0, 0}, "Send some mail"), Quit: ok(221, smtp.EnhancedCode{2, 0, 0}, "Bye"),
		Chunk: ok(250, smtp.EnhancedCode{2, 0, 0}, "Ok"),
		Auth:  ok(235, smtp.EnhancedCode{2, 7, 0}, "Authentication successful"),
	}
	_, s, c, scanner, _ := testServerEhlo(t, func(s *smtp.Server) { s.Replies = replies })
	defer s.Close()
	for _, step := range []struct{ cmd, want string }{
		{"AUTH PLAIN AHVzZXJuYW1lAHBhc3N3b3Jk", "235 2.7.0 Authentication successful"},
		{"NOOP", "250 2.0.0 Ok"},
		{"VRFY x", "252 2.0.0 Send some mail"},
		{"MAIL FROM:<root@nsa.gov>", "250 2.1.0 Ok"},
		{"RCPT TO:<root@gchq.gov.uk>", "250 2.1.5 Ok"},
		{"BDAT 3", ""},
		{"", "250 2.0.0 Ok"},
		{"RSET", "250 2.0.0 Ok"},
		{"MAIL FROM:<root@nsa.gov>", "250 2.1.0 Ok"},
		{"RCPT TO:<root@gchq.gov.uk>", "250 2.1.5 Ok"},
		{"DATA", "354 End data with <CR><LF>.<CR><LF>"},
		{"Hey\r\n.", "250 2.0.0 OK: queued"},
		{"QUIT", "221 2.0.0 Bye"},
	} {
		if step.cmd == "BDAT 3" {
			io.WriteString(c, "BDAT 3\r\nabc")
			continue
		}
		if step.cmd != "" {
			io.WriteString(c, step.cmd+"\r\n")
		}
		scanner.Scan()
		if got := scanner.Text(); got != step.want {
			t.Errorf("after %q: got %q, want %q", step.cmd, got, step.want)
		}
	}
}
