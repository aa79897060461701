package smtp

// [postline patch] Replies holds the texts of the replies the server
// writes on its own, for commands that succeed without the session
// choosing a reply (a session's own errors and replies, and the reply
// to a message, which the session returns, are sent as they
// are). A nil Server.Replies keeps upstream's texts.
type Replies struct {
	Mail     SMTPError // after a MAIL FROM the session accepted
	Rcpt     SMTPError // after a RCPT TO the session accepted
	Data     SMTPError // DATA's go-ahead (354)
	Chunk    SMTPError // after a BDAT chunk that is not the last
	Reset    SMTPError // RSET
	Noop     SMTPError // NOOP
	Vrfy     SMTPError // VRFY
	Quit     SMTPError // QUIT
	Auth     SMTPError // a successful AUTH
	StartTLS SMTPError // STARTTLS's go-ahead (220)
}

// writeReply writes the server's reply r, or upstream's text when no
// Replies are set. upstream is a function so that its text (which may
// name an address) costs nothing when Replies are set.
func (c *Conn) writeReply(pick func(*Replies) *SMTPError, upstream func() (int, EnhancedCode, string)) {
	if r := c.server.Replies; r != nil {
		reply := pick(r)
		c.writeResponse(reply.Code, reply.EnhancedCode, reply.Message)
		return
	}
	c.writeResponse(upstream())
}
