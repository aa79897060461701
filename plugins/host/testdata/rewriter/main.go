// Command rewriter is a test plugin that changes everything a data hook
// may change: the body becomes its upper-case copy after a first line
// "REWRITTEN", written to a temporary file and streamed back as it is
// read; the first Subject is changed, a field is inserted after the
// first field; and the envelope follows the X-New-Sender, X-Add-Rcpt and
// X-Del-Rcpt fields of the message.
package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"

	"postline/plugins/sdk"
)

type rewriter struct{}

func (rewriter) ReplacesBody() bool { return true }

func (rewriter) Data(_ context.Context, m *sdk.Message) (sdk.Verdict, error) {
	f, err := os.CreateTemp("", "rewriter-*")
	if err != nil {
		return sdk.Verdict{}, err
	}
	os.Remove(f.Name())
	w := bufio.NewWriter(f)
	w.WriteString("REWRITTEN\r\n")
	buf := make([]byte, 32<<10)
	for {
		n, err := m.Body.Read(buf)
		w.Write(bytes.ToUpper(buf[:n]))
		if err == io.EOF {
			break
		}
		if err != nil {
			f.Close()
			return sdk.Verdict{}, err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return sdk.Verdict{}, err
	}
	f.Seek(0, io.SeekStart)
	v := sdk.Continue().With(sdk.Change("Subject", 1, "changed"), sdk.Insert(1, "X-Inserted", "yes")).ReplaceBody(f)
	if s := m.Header.Get("X-New-Sender"); s != "" {
		v = v.ChangeSender(s)
	}
	if r := m.Header.Get("X-Add-Rcpt"); r != "" {
		v = v.AddRecipient(r)
	}
	if r := m.Header.Get("X-Del-Rcpt"); r != "" {
		v = v.RemoveRecipient(r)
	}
	return v, nil
}

func main() { sdk.Serve(rewriter{}) }
