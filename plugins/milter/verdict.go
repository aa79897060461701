package main

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/d--j/go-milter"

	"postline/plugins/sdk"
)

// refusal maps a milter's action that ends the transaction (libmilter's
// SMFIS_REJECT, SMFIS_TEMPFAIL, SMFIS_DISCARD and SMFIR_REPLYCODE) to a
// verdict. Accept and continue are not refusals: other plugins still run.
func refusal(a milter.Action) (sdk.Verdict, bool) {
	switch a.Type {
	case milter.ActionDiscard:
		return sdk.Discard(), true
	case milter.ActionReject:
		return sdk.Reject(550, "5.7.1", "Command rejected"), true
	case milter.ActionTempFail:
		return sdk.Tempfail(451, "4.7.1", "Service unavailable - try again later"), true
	case milter.ActionRejectWithCode:
		return replyCode(a.SMTPReply), true
	}
	return sdk.Verdict{}, false
}

var replyRe = regexp.MustCompile(`^([45][0-9][0-9])[ -](?:([45]\.[0-9]{1,3}\.[0-9]{1,3}) )?(.*)$`)

// replyCode keeps the milter's own reply (SMFIR_REPLYCODE), e.g. rspamd's
// "554 5.7.1 Gtube pattern": its code decides between refusal and
// temporary failure. A multi-line reply keeps its first line's code and
// joins the texts.
func replyCode(reply string) sdk.Verdict {
	lines := strings.Split(strings.ReplaceAll(reply, "\r\n", "\n"), "\n")
	m := replyRe.FindStringSubmatch(lines[0])
	if m == nil {
		return sdk.Reject(550, "5.7.1", "Command rejected")
	}
	code, _ := strconv.Atoi(m[1])
	texts := []string{m[3]}
	for _, l := range lines[1:] {
		if lm := replyRe.FindStringSubmatch(l); lm != nil {
			texts = append(texts, lm[3])
		}
	}
	// libmilter's smfi_setreply text is a printf format: "%%" is "%".
	text := strings.ReplaceAll(strings.Join(texts, " "), "%%", "%")
	if code/100 == 4 {
		return sdk.Tempfail(code, m[2], text)
	}
	return sdk.Reject(code, m[2], text)
}

// applyMods adds one milter's changes at the end of the message to v,
// header edits to edits (libmilter's smfi_addheader, smfi_insheader,
// smfi_chgheader, smfi_addrcpt, smfi_delrcpt, smfi_chgfrom,
// smfi_quarantine and smfi_replacebody).
func applyMods(v sdk.Verdict, o outcome, quarantine string, edits *[]sdk.Edit) sdk.Verdict {
	for _, m := range o.mods {
		switch m.Type {
		case milter.ActionAddHeader:
			*edits = append(*edits, sdk.Append(m.HeaderName, headerValue(m.HeaderValue)))
		case milter.ActionInsertHeader:
			*edits = append(*edits, sdk.Insert(int(m.HeaderIndex), m.HeaderName, headerValue(m.HeaderValue)))
		case milter.ActionChangeHeader:
			*edits = append(*edits, sdk.Change(m.HeaderName, int(m.HeaderIndex), headerValue(m.HeaderValue)))
		case milter.ActionAddRcpt:
			v = v.AddRecipient(unbracket(m.Rcpt))
		case milter.ActionDelRcpt:
			v = v.RemoveRecipient(unbracket(m.Rcpt))
		case milter.ActionChangeFrom:
			v = v.ChangeSender(unbracket(m.From))
		case milter.ActionQuarantine:
			// Postfix holds quarantined mail for the admin; postline files
			// it into a folder of the recipient's, Junk by default.
			v = v.Into(quarantine)
		}
	}
	if o.body != nil {
		v = v.ReplaceBody(o.body)
	}
	return v
}

// headerValue turns a milter's value (LF-folded, maybe with the space
// after the colon) into the form of a header edit.
func headerValue(v string) string {
	v = strings.TrimPrefix(v, " ")
	return strings.ReplaceAll(strings.ReplaceAll(v, "\r\n", "\n"), "\n", "\r\n")
}

func unbracket(addr string) string {
	return strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(addr), "<"), ">")
}
