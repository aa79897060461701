package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// replBodyCode is SMFIR_REPLBODY: a piece of the milter's new body, sent
// after end of message (libmilter's smfi_replacebody).
const replBodyCode = 'b'

// maxPacket bounds one milter packet: the largest data size a milter may
// negotiate (1 MiB) and its header.
const maxPacket = 1<<20 + 64

// bodyTap is the milter connection as the protocol library reads it,
// minus the SMFIR_REPLBODY packets: those go to an unlinked file as they
// arrive. go-milter's client collects every modification of the end of
// message in memory, new body included; through the tap a new body of
// any size costs one packet of memory.
type bodyTap struct {
	net.Conn
	dir     string        // where the new body is written ("": the system's temporary folder)
	timeout time.Duration // a milter's time per packet (command_timeout)
	pending []byte        // the packet the library reads next
	body    *os.File      // nil until the first SMFIR_REPLBODY
	err     error
}

func (t *bodyTap) Read(p []byte) (int, error) {
	for len(t.pending) == 0 {
		if t.err != nil {
			return 0, t.err
		}
		t.err = t.nextPacket()
	}
	n := copy(p, t.pending)
	t.pending = t.pending[n:]
	return n, nil
}

// nextPacket reads one packet: a 4-byte length, the code, the data
// (the milter protocol's framing). A new-body packet is diverted.
func (t *bodyTap) nextPacket() error {
	var head [4]byte
	if _, err := io.ReadFull(t.Conn, head[:]); err != nil {
		return err
	}
	size := binary.BigEndian.Uint32(head[:])
	if size == 0 || size > maxPacket {
		return fmt.Errorf("milter packet of %d bytes", size)
	}
	pkt := make([]byte, 4+size)
	copy(pkt, head[:])
	if _, err := io.ReadFull(t.Conn, pkt[4:]); err != nil {
		return err
	}
	if pkt[4] != replBodyCode {
		t.pending = pkt
		return nil
	}
	// The library's deadline covers one packet as it sees them; the
	// pieces of a new body each get the same time.
	if err := t.Conn.SetReadDeadline(time.Now().Add(t.timeout)); err != nil {
		return err
	}
	return t.keepBody(pkt[5:])
}

func (t *bodyTap) keepBody(piece []byte) error {
	if t.body == nil {
		f, err := os.CreateTemp(t.dir, "milter-body-*")
		if err != nil {
			return fmt.Errorf("file for the milter's new body: %w", err)
		}
		os.Remove(f.Name())
		t.body = f
	}
	if _, err := t.body.Write(piece); err != nil {
		return fmt.Errorf("milter's new body: %w", err)
	}
	return nil
}

// takeBody hands over the new body, rewound, or nil when the milter sent none.
func (t *bodyTap) takeBody() (*os.File, error) {
	f := t.body
	t.body = nil
	if f == nil {
		return nil, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (t *bodyTap) Close() error {
	if t.body != nil {
		t.body.Close()
	}
	return t.Conn.Close()
}

// tapDialer dials a milter and wraps the connection in a bodyTap.
type tapDialer struct {
	dialer  net.Dialer
	dir     string        // for new bodies
	timeout time.Duration // per packet of a new body
	last    *bodyTap      // the tap of the session being opened
}

func (d *tapDialer) Dial(network, addr string) (net.Conn, error) {
	c, err := d.dialer.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	d.last = &bodyTap{Conn: c, timeout: d.timeout, dir: d.dir}
	return d.last, nil
}
