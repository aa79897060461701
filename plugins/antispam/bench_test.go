package main

import (
	"strings"
	"testing"
)

// BenchmarkData10KiB scores a DKIM-signed 10 KiB message with every DNS
// check against the test DNS server on loopback (SPF, the DKIM key,
// DMARC, one DNSBL zone) and three rules.
func BenchmarkData10KiB(b *testing.B) {
	w := newWorld(b)
	f := w.filter(b, map[string]any{
		"dnsbl_zones": []any{"bl.test"},
		"rules": []any{
			map[string]any{"name": "LOTTERY", "header": "Subject", "pattern": "(?i)lottery", "score": 2.0},
			map[string]any{"name": "WINNER", "body": "(?i)you are a winner", "score": 2.0},
			map[string]any{"name": "UNSUBSCRIBE", "body": "(?i)unsubscribe", "score": 0.5},
		},
	})
	body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do.\r\n", 160) // 10,720 bytes
	h := w.sign(b, plainHeader, body)
	b.SetBytes(int64(len(h) + len(body)))
	for b.Loop() {
		run(b, f, message(fromLocalhost, h, strings.NewReader(body)))
	}
}
