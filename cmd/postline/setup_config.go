package main

import (
	"bytes"
	"strconv"
	"text/template"
)

// configTemplate is the config setup writes: every key a real host
// needs, with the comments a person reads before changing one.
var configTemplate = template.Must(template.New("postline.toml").Funcs(template.FuncMap{"q": strconv.Quote}).Parse(
	`# postline for {{.Domain}}, written by ` + "`postline setup`" + ` on {{.Date}}.
# Check it with ` + "`postline -c {{.Config}} check`" + `; the README's
# Configuration section explains every key. Durations are Go duration
# strings ("30s", "4h") and may use days ("5d").

# This host's fully qualified name, as its A/AAAA and PTR records say.
hostname = {{q .Hostname}}

# Domains whose mail is delivered on this host (their MX points here).
domains = [{{q .Domain}}]

# Queue, unix sockets and generated certificates; a local filesystem
# that honours fsync.
state_dir = {{q .State}}

# Accounts in Dovecot's passwd-file format (` + "`postline user add`" + `): point
# Dovecot's passdb at the same file so one password serves SMTP and IMAP.
users_file = {{q .Users}}
# "address  target, target": postmaster@ and abuse@ go to the admin
# (` + "`postline alias`" + `); "@domain  target" is a catch-all.
aliases_file = {{q .Aliases}}
# you+anything@ reaches you (into your folder "anything" if you made it).
recipient_delimiter = "+"

[msa]
# Mail clients submit here with a password: STARTTLS, and implicit TLS
# (RFC 8314 prefers the latter).
submission  = [{{q .Submission}}]
submissions = [{{q .Submissions}}]
{{if .User}}user = {{q .User}}
{{end}}
[mta]
# Other mail servers deliver here; only mail for ` + "`domains`" + ` is accepted.
listen = [{{q .SMTP}}]
dns_server = ""   # "" uses /etc/resolv.conf
{{if .User}}user = {{q .User}}
{{end}}
[mda]
# <mail_root>/<domain>/<local-part>/ is each user's Maildir; Dovecot:
# mail_location = maildir:{{.Mail}}/%d/%n
mail_root = {{q .Mail}}
{{if .MailUser}}user = {{q .MailUser}}
{{end}}
[tls]
# Empty: a self-signed certificate is made in state_dir/tls/ (mail
# clients will warn). Give a certificate for the hostname, e.g.:
# cert = "/etc/letsencrypt/live/{{.Hostname}}/fullchain.pem"
# key  = "/etc/letsencrypt/live/{{.Hostname}}/privkey.pem"
# or have postline get one from Let's Encrypt (port 80 must reach this
# host), renewed 30 days before it expires:
# [acme]
# email = {{q .Admin}}
# With it, serve the MTA-STS policy too (senders then require TLS):
# [mta_sts]
# mode = "testing"   # "enforce" once the reports (tls-reports@) are clean

# DKIM signs what users submit, with the key whose public half is the
# TXT record at {{.Selector}}._domainkey.{{.Domain}}. A new key:
# ` + "`postline dkim keygen {{.Domain}}`" + `.
[[plugins]]
name = "dkim-sign"
daemon = "msa"
hooks = ["data"]
[[plugins.config.keys]]
domain = {{q .Domain}}
selector = {{q .Selector}}
key_file = {{q .KeyFile}}
`))

// configText is the config for this run's flags.
func (s *setupRun) configText() string {
	o := s.opts
	data := map[string]string{
		"Domain": o.domain, "Date": s.now.Format("2006-01-02"), "Config": o.configPath(),
		"Hostname": o.hostname, "State": o.state, "Users": o.usersPath(), "Aliases": o.aliasesPath(),
		"Submission": o.submission, "Submissions": o.submissions, "SMTP": o.smtp, "Mail": o.mail,
		"Selector": s.key.Selector, "KeyFile": s.key.KeyFile, "Admin": o.admin,
	}
	if s.ids.root {
		data["User"], data["MailUser"] = o.user, o.mailUser
	}
	var b bytes.Buffer
	configTemplate.Execute(&b, data) // cannot fail: the template is fixed and data is strings
	return b.String()
}
