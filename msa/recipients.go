package msa

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"postline/plugins/host"
)

// HeaderRecipients reads the recipients of a message from its To, Cc and
// Bcc fields and returns them with the header block without Bcc, as
// `sendmail -t` does (and RFC 5322 §3.6.3 leaves to the sender: Bcc
// recipients must not be shown to the others). head is the header block
// with the blank line that ends it, CRLF line ends.
func HeaderRecipients(head []byte) (rcpts []string, edited []byte, err error) {
	m, err := mail.ReadMessage(strings.NewReader(string(head)))
	if err != nil {
		return nil, nil, fmt.Errorf("the header does not parse: %w", err)
	}
	for _, field := range []string{"To", "Cc", "Bcc"} {
		list, err := m.Header.AddressList(field)
		if err != nil && !errors.Is(err, mail.ErrHeaderNotPresent) {
			return nil, nil, fmt.Errorf("%s: %w", field, err)
		}
		for _, addr := range list {
			rcpts = append(rcpts, addr.Address)
		}
	}
	edited, err = host.ApplyEdits(head, []host.HeaderEdit{{Op: host.Remove, Name: "Bcc"}})
	if err != nil {
		return nil, nil, fmt.Errorf("remove Bcc: %w", err)
	}
	return rcpts, edited, nil
}

// HeaderSender returns the address of the From field of a header block
// (the first, when it names several), as sendmail takes a default sender.
func HeaderSender(head []byte) (string, error) {
	m, err := mail.ReadMessage(strings.NewReader(string(head)))
	if err != nil {
		return "", fmt.Errorf("the header does not parse: %w", err)
	}
	list, err := m.Header.AddressList("From")
	if err != nil || len(list) == 0 {
		return "", fmt.Errorf("no usable From field: %v", err)
	}
	return list[0].Address, nil
}
