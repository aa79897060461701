package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"postline/config"
	"postline/msa"
)

// sendmail(1) exit codes (sysexits.h), which programs that call it read.
const (
	exUsage       = 64
	exUnavailable = 69
	exTempFail    = 75
)

// sendmailArgs is what the command line of sendmail(1) asks for.
type sendmailArgs struct {
	from        string
	fromHeaders bool // -t: recipients from To, Cc and Bcc
	dotEnds     bool // without -i, a line with a single dot ends the message
	rcpts       []string
}

// parseSendmailArgs reads the options programs pass to sendmail; ones
// about delivery modes and queue runs (-oX, -odX, -bm, -F) change
// nothing here and are accepted.
func parseSendmailArgs(args []string) (sendmailArgs, error) {
	a := sendmailArgs{dotEnds: true}
	for i := 0; i < len(args); i++ {
		switch arg := args[i]; {
		case arg == "-t":
			a.fromHeaders = true
		case arg == "-i" || arg == "-oi":
			a.dotEnds = false
		case arg == "-f" || arg == "-r" || arg == "-F":
			if i+1 == len(args) {
				return a, fmt.Errorf("%s needs a value", arg)
			}
			if i++; arg != "-F" {
				a.from = args[i]
			}
		case strings.HasPrefix(arg, "-f") || strings.HasPrefix(arg, "-r"):
			a.from = arg[2:]
		case arg == "--":
			a.rcpts = append(a.rcpts, args[i+1:]...)
			return a, nil
		case strings.HasPrefix(arg, "-"):
			// -bm, -oem, -odi, -F..., -v: nothing to do.
		default:
			a.rcpts = append(a.rcpts, arg)
		}
	}
	return a, nil
}

// sendmail queues the message on stdin through the MTA's trusted socket,
// as sendmail(1) does for local programs (cron, scripts). It needs the
// rights of root or the msa user on that socket.
func sendmail(cfg *config.Config, args []string) int {
	a, err := parseSendmailArgs(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "postline sendmail: %v\n", err)
		return exUsage
	}
	msg, err := readMessage(os.Stdin, a.dotEnds, cfg)
	if err == nil && a.fromHeaders {
		msg, err = recipientsFromHeader(msg, &a)
	}
	if err == nil && len(a.rcpts) == 0 {
		err = errors.New("no recipients: name them, or use -t to take them from To, Cc and Bcc")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "postline sendmail: %v\n", err)
		return exUsage
	}
	if a.from == "" {
		a.from = localSender(cfg)
	}
	if err := submitLocal(cfg, a, msg); err != nil {
		fmt.Fprintf(os.Stderr, "postline sendmail: %v\n", err)
		var serr *smtp.SMTPError
		if errors.As(err, &serr) && serr.Code >= 500 {
			return exUnavailable
		}
		return exTempFail
	}
	return 0
}

// readMessage reads the message, up to a line with a single dot when
// dotEnds, with CRLF line ends and the MSA's Message-ID and Date added
// where missing.
func readMessage(r io.Reader, dotEnds bool, cfg *config.Config) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, cfg.MaxMessageSize+1))
	if err != nil {
		return nil, fmt.Errorf("read the message: %w", err)
	}
	if int64(len(data)) > cfg.MaxMessageSize {
		return nil, fmt.Errorf("the message is bigger than max_message_size (%d bytes)", cfg.MaxMessageSize)
	}
	// Programs write LF line ends; SMTP wants CRLF.
	data = bytes.ReplaceAll(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
	if dotEnds {
		if bytes.HasPrefix(data, []byte(".\r\n")) {
			data = nil
		} else if i := bytes.Index(data, []byte("\r\n.\r\n")); i >= 0 {
			data = data[:i+2]
		}
	}
	var out bytes.Buffer
	if err := msa.CompleteHeader(&out, bytes.NewReader(data), cfg.Hostname); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// recipientsFromHeader adds To, Cc and Bcc to a.rcpts (-t) and returns
// the message without its Bcc field.
func recipientsFromHeader(msg []byte, a *sendmailArgs) ([]byte, error) {
	head, body, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	rcpts, edited, err := msa.HeaderRecipients(append(head, "\r\n\r\n"...))
	if err != nil {
		return nil, fmt.Errorf("-t: %w", err)
	}
	a.rcpts = append(a.rcpts, rcpts...)
	return append(edited, body...), nil
}

// localSender is the invoking user at this host, as sendmail's default.
func localSender(cfg *config.Config) string {
	name := "root"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return name + "@" + cfg.Hostname
}

// submitLocal hands the message to the MTA on its trusted socket.
func submitLocal(cfg *config.Config, a sendmailArgs, msg []byte) error {
	conn, err := net.DialTimeout("unix", cfg.MTASocket(), 10*time.Second)
	if err != nil {
		return fmt.Errorf("the MTA is not reachable (is postline running, and may this user use %s?): %w", cfg.MTASocket(), err)
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello(cfg.Hostname); err != nil {
		return err
	}
	if err := c.SendMail(a.from, a.rcpts, bytes.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}
