package sdk

import (
	"reflect"
	"testing"

	"postline/plugins/pb"
)

func TestDecodeConfigKeepsIntegers(t *testing.T) {
	cfg, err := decodeConfig([]byte(`{"n": 42, "f": 2.5, "zones": ["a", 1], "t": {"big": 9007199254740993}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"n": int64(42), "f": 2.5, "zones": []any{"a", int64(1)},
		"t": map[string]any{"big": int64(9007199254740993)}}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got %#v\nwant %#v", cfg, want)
	}
	if cfg, err := decodeConfig(nil); err != nil || cfg == nil {
		t.Errorf("empty config: %v %v", cfg, err)
	}
}

func TestVerdictWithDoesNotAlias(t *testing.T) {
	base := Continue().With(Prepend("X-A", "1"))
	a := base.With(Append("X-B", "2"))
	b := base.With(Remove("X-C"))
	if len(a.edits) != 2 || len(b.edits) != 2 || a.edits[1].name != "X-B" || b.edits[1].name != "X-C" {
		t.Errorf("edits shared between verdicts: %+v %+v", a.edits, b.edits)
	}
}

func TestVerdictProto(t *testing.T) {
	got := Reject(554, "5.7.1", "no").With(Remove("X-Spam")).proto()
	want := &pb.Verdict{Action: pb.Verdict_REJECT, Reply: &pb.Reply{Code: 554, EnhancedCode: "5.7.1", Text: "no"},
		HeaderEdits: []*pb.HeaderEdit{{Op: pb.HeaderEdit_REMOVE, Name: "X-Spam"}}}
	if got.String() != want.String() {
		t.Errorf("got %v, want %v", got, want)
	}
	if v := FileInto("Junk").proto(); v.Action != pb.Verdict_FILE_INTO || v.Folder != "Junk" || v.Reply != nil {
		t.Errorf("file into: %v", v)
	}
}

type onlyRcpt struct{}

func (onlyRcpt) Rcpt() {} // not the RcptFilter signature

func TestHooksOf(t *testing.T) {
	if h := hooksOf(onlyRcpt{}); len(h) != 0 {
		t.Errorf("hooks of a type with a wrong signature: %v", h)
	}
}
