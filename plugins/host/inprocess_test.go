package host

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"postline/plugins/sdk"
)

// counter reads the whole body and names its size in a field; it hangs
// at "X-Hang" until its context ends.
type counter struct{}

func (counter) Data(ctx context.Context, m *sdk.Message) (sdk.Verdict, error) {
	if m.Header.Get("X-Hang") != "" {
		<-ctx.Done()
		return sdk.Continue(), ctx.Err()
	}
	n, err := io.Copy(io.Discard, m.Body)
	if err != nil {
		return sdk.Verdict{}, err
	}
	return sdk.Continue().With(sdk.Prepend("X-Body-Bytes", fmt.Sprint(n))), nil
}

func (counter) Deliver(_ context.Context, d *sdk.Delivery) (sdk.Verdict, error) {
	return sdk.Continue().With(sdk.Prepend("X-Rcpt", d.Recipient)), nil
}

// A filter run inside the daemon (Spec.InProcess) gets every hook as a
// plugin process would, a body of any size one chunk at a time, and its
// timeout.
func TestInProcessFilter(t *testing.T) {
	ctx := context.Background()
	c, _ := startChain(t, "mta", Spec{Name: "counter", Daemon: "mta", InProcess: counter{}, Timeout: 200 * time.Millisecond})
	tx := TxInfo{Conn: conn, Sender: "a@example.test", Recipients: []string{"b@example.test"}}
	body := strings.Repeat("0123456789abcdef", 1<<18) // 4 MiB, several chunks
	got := c.Data(ctx, tx, header("continue"), strings.NewReader(body))
	want := Result{Action: Continue, Edits: []HeaderEdit{{Prepend, "X-Body-Bytes", fmt.Sprint(len(body)), 0}}}
	if !equalResult(got, want) {
		t.Errorf("Data = %+v, want %+v", got, want)
	}
	if got := c.Data(ctx, tx, header("continue", "X-Hang: yes\r\n"), strings.NewReader("x")); got.Action != Tempfail {
		t.Errorf("Data of a hook past its timeout = %+v, want tempfail", got)
	}
	d, _ := startChain(t, "mda", Spec{Name: "counter", Daemon: "mda", InProcess: counter{}})
	got = d.Deliver(ctx, DeliveryInfo{Recipient: "b@example.test", Sender: "a@example.test"}, header("continue"), nil)
	if want := []HeaderEdit{{Prepend, "X-Rcpt", "b@example.test", 0}}; !equalResult(got, Result{Action: Continue, Edits: want}) {
		t.Errorf("Deliver = %+v", got)
	}
}
