package dsn

import (
	"testing"

	"github.com/emersion/go-smtp"
)

func TestNotifyWants(t *testing.T) {
	for _, tc := range []struct {
		notify Notify
		want   map[string]bool
	}{
		{"", map[string]bool{ActionFailed: true, ActionDelayed: true, ActionDelivered: false, ActionRelayed: false}},
		{"NEVER", map[string]bool{ActionFailed: false, ActionDelayed: false, ActionDelivered: false}},
		{"SUCCESS", map[string]bool{ActionFailed: false, ActionDelayed: false, ActionDelivered: true, ActionRelayed: true}},
		{"FAILURE", map[string]bool{ActionFailed: true, ActionDelayed: false, ActionDelivered: false}},
		{"SUCCESS,DELAY", map[string]bool{ActionFailed: false, ActionDelayed: true, ActionDelivered: true}},
	} {
		for action, want := range tc.want {
			if got := tc.notify.Wants(action); got != want {
				t.Errorf("NOTIFY=%q wants %s: %v, want %v", tc.notify, action, got, want)
			}
		}
	}
}

func TestNotifyAndORcptRoundTrip(t *testing.T) {
	values := []smtp.DSNNotify{smtp.DSNNotifySuccess, smtp.DSNNotifyDelayed}
	n := NotifyOf(values)
	if n != "SUCCESS,DELAY" || len(n.Values()) != 2 || n.Values()[1] != smtp.DSNNotifyDelayed {
		t.Errorf("NotifyOf = %q, Values = %v", n, n.Values())
	}
	if Notify("").Values() != nil {
		t.Error("no NOTIFY must send none")
	}
	o := ORcptOf(&smtp.RcptOptions{OriginalRecipientType: smtp.DSNAddressTypeRFC822, OriginalRecipient: "Bob@example.org"})
	if typ, addr := o.Split(); o != "rfc822;Bob@example.org" || typ != smtp.DSNAddressTypeRFC822 || addr != "Bob@example.org" {
		t.Errorf("ORCPT %q splits into %q %q", o, typ, addr)
	}
	if ORcptOf(nil) != "" || ORcptOf(&smtp.RcptOptions{}) != "" {
		t.Error("no ORCPT must keep none")
	}
}

func TestCheckLengths(t *testing.T) {
	long := string(make([]byte, MaxORcpt+1))
	if CheckMail(&smtp.MailOptions{EnvelopeID: long[:MaxEnvID]}) != "" || CheckMail(&smtp.MailOptions{EnvelopeID: long[:MaxEnvID+1]}) != "ENVID" {
		t.Error("ENVID: 100 characters at most (RFC 3461 §4.4)")
	}
	at := func(n int) *smtp.RcptOptions {
		return &smtp.RcptOptions{OriginalRecipientType: smtp.DSNAddressTypeRFC822, OriginalRecipient: long[:n]}
	}
	if CheckRcpt(at(MaxORcpt-7)) != "" || CheckRcpt(at(MaxORcpt-6)) != "ORCPT" {
		t.Error("ORCPT: 500 characters at most (RFC 3461 §4.2)")
	}
}
