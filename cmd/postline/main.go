// Command postline is the one command a person uses: it starts and
// supervises the daemons, manages users and the queue, and checks the
// config.
//
//	postline setup --hostname H --domain D   make a new host's config and print its DNS records
//	postline [-c FILE] start                 run the stack in the foreground
//	postline [-c FILE] status [--json]       the running stack at a glance
//	postline [-c FILE] check                 validate the config
//	postline [-c FILE] user add ADDRESS      add a user or change a password
//	postline [-c FILE] user del ADDRESS      remove a user
//	postline [-c FILE] user list             list users
//	postline [-c FILE] alias add|del|list    edit the aliases file
//	postline [-c FILE] token add|list|remove API tokens of the HTTP submission API
//	postline [-c FILE] queue                 list the MTA's queue, like mailq
//	postline [-c FILE] queue show ID         one message's envelope and header
//	postline [-c FILE] queue flush           retry every deferred recipient now
//	postline [-c FILE] queue delete ID       remove a message, no bounce
//	postline [-c FILE] queue bounce ID       return a message to its sender
//	postline [-c FILE] dns check [--ip A]    ask the DNS for the records the host needs
//	postline [-c FILE] dkim keygen DOMAIN    make a DKIM key, print its DNS record
//	postline [-c FILE] sendmail [-t] [-i] [-f FROM] [RCPT...]
//	                                          queue the message on stdin, like sendmail(1)
//
// Run as "sendmail" or "mailq" (a link to postline), it acts as those,
// with the config named by $POSTLINE_CONFIG or the default.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"postline/config"
	"postline/daemon"
)

const usage = `usage: postline [-c FILE] COMMAND

commands:
  setup --hostname NAME --domain DOMAIN [...]
                      make the config, users, folders and a DKIM key for a new
                      mail host and print the DNS records to publish
  start               start the MSA, MTA and MDA and supervise them (foreground)
  check               validate the config file and exit
  status [--json]     the running stack: daemons, listeners, queue, certificate,
                      last warnings and errors
  user add ADDRESS    add a user, or set a new password (read from stdin or prompted)
  user del ADDRESS    remove a user
  user list           list users
  alias add ALIAS TARGET...
                      send mail for ALIAS (user@domain, or @domain for a catch-all)
                      to the TARGET addresses
  alias del ALIAS     remove an alias
  alias list          list aliases
  token add USER      make an API token for USER (the HTTP API); printed once
  token list [USER]   list tokens by ID (never the tokens themselves)
  token remove USER ID
                      revoke one of USER's tokens
  token webhook USER URL|--remove
                      POST USER's delivery events to URL (signed; the secret is printed once)
  queue               list queued messages with each recipient's state, like mailq
  queue show ID       show a queued message's envelope and header
  queue flush         retry every deferred recipient now
  queue delete ID     remove a message from the queue without a bounce
  queue bounce ID     give up on a message: bounce it to its sender and remove it
  mailq               the same as queue
  dns check [--ip ADDRESS]...
                      ask the DNS for every record the host needs: ok, missing or wrong
  dkim keygen DOMAIN [--selector S] [--ed25519]
                      make a new DKIM key for DOMAIN and print its DNS record
  sendmail [-t] [-i] [-f FROM] [RCPT...]
                      queue the message read from stdin (as root or the msa user),
                      like sendmail(1); -t takes recipients from To, Cc and Bcc
`

func main() {
	if name := filepath.Base(os.Args[0]); name == "sendmail" || name == "mailq" {
		os.Exit(runAs(name, os.Args[1:]))
	}
	flags := flag.NewFlagSet("postline", flag.ContinueOnError)
	cfgPath := flags.String("c", daemon.DefaultConfig, "config file")
	flags.Usage = func() { fmt.Fprintf(os.Stderr, "%s\noptions:\n", usage); flags.PrintDefaults() }
	if err := flags.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	args := flags.Args()
	if len(args) == 0 {
		flags.Usage()
		os.Exit(2)
	}
	if args[0] == "setup" { // it writes the config: none to load yet
		os.Exit(setup(args[1:]))
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(run(cfg, args))
}

func run(cfg *config.Config, args []string) int {
	switch args[0] {
	case "start":
		return start(cfg)
	case "check":
		return check(cfg)
	case "user":
		return userCommand(cfg, args[1:])
	case "alias":
		return aliasCommand(cfg, args[1:])
	case "token":
		return tokenCommand(cfg, args[1:])
	case "status":
		return statusCommand(cfg, args[1:])
	case "queue", "mailq":
		return queueCommand(cfg, args[1:])
	case "sendmail":
		return sendmail(cfg, args[1:])
	case "dkim":
		return dkimCommand(cfg, args[1:])
	case "dns":
		return dnsCommand(cfg, args[1:])
	}
	fmt.Fprintf(os.Stderr, "postline: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// runAs is postline run through a link named sendmail or mailq, the way
// programs call a mail system: no -c, so the config comes from
// $POSTLINE_CONFIG or the default path.
func runAs(name string, args []string) int {
	path := os.Getenv("POSTLINE_CONFIG")
	if path == "" {
		path = daemon.DefaultConfig
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exTempFail
	}
	return run(cfg, append([]string{name}, args...))
}
