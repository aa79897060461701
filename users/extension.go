package users

import "strings"

// SplitExtension splits addr ("user+tag@domain", already normalized) at
// the first delim of its local part, as Postfix's recipient_delimiter
// does: base "user@domain", extension "tag". ok is false when delim is
// "" or the local part has no delimiter after its first character.
func SplitExtension(addr, delim string) (base, ext string, ok bool) {
	if delim == "" {
		return "", "", false
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return "", "", false
	}
	local, domain := addr[:at], addr[at:]
	i := strings.Index(local, delim)
	if i <= 0 {
		return "", "", false
	}
	return local[:i] + domain, local[i+len(delim):], true
}
