package main

import (
	"fmt"
	"os"
	"time"

	"postline/config"
	"postline/users"
)

// tokenCommand runs `postline token add|list|remove`: the API tokens of
// the MSA's HTTP submission API (docs/http-api.md).
func tokenCommand(cfg *config.Config, args []string) int {
	f := users.TokenFile{Path: cfg.MSA.TokensFile, Like: cfg.UsersFile}
	var err error
	switch {
	case len(args) == 2 && args[0] == "add":
		err = tokenAdd(cfg, f, args[1])
	case len(args) <= 2 && len(args) >= 1 && args[0] == "list":
		user := ""
		if len(args) == 2 {
			user = args[1]
		}
		err = tokenList(f, user)
	case len(args) == 3 && args[0] == "webhook":
		err = webhookCommand(cfg, args[1], args[2])
	case len(args) == 3 && args[0] == "remove":
		if err = f.Remove(args[1], args[2]); err == nil {
			fmt.Printf("removed token %s of %s\n", args[2], users.Normalize(args[1]))
		}
	default:
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "postline: token: %v\n", err)
		return 1
	}
	return 0
}

// webhookCommand sets user's delivery-event webhook to url, printing the
// new signing secret once, or removes it (url "--remove").
func webhookCommand(cfg *config.Config, user, url string) error {
	f := users.WebhookFile{Path: cfg.WebhooksFile(), Like: cfg.UsersFile}
	if url == "--remove" {
		if err := f.Remove(user); err != nil {
			return err
		}
		fmt.Printf("removed the webhook of %s\n", users.Normalize(user))
		return nil
	}
	db, err := users.Open(cfg.UsersFile)
	if err != nil {
		return err
	}
	if !db.Exists(user) {
		return fmt.Errorf("%s has no account; add it first with `postline user add %s`", users.Normalize(user), users.Normalize(user))
	}
	secret, err := f.Set(user, url)
	if err != nil {
		return err
	}
	fmt.Println(secret)
	fmt.Fprintf(os.Stderr, "delivery events of %s's messages go to %s, signed with this secret (X-Postline-Signature); "+
		"it is stored in %s\n", users.Normalize(user), url, f.Path)
	return nil
}

// tokenAdd makes a token for an existing user and prints it, the only
// time it is ever shown: the file keeps its hash.
func tokenAdd(cfg *config.Config, f users.TokenFile, user string) error {
	db, err := users.Open(cfg.UsersFile)
	if err != nil {
		return err
	}
	if !db.Exists(user) {
		return fmt.Errorf("%s has no account; add it first with `postline user add %s`", users.Normalize(user), users.Normalize(user))
	}
	secret, tok, err := f.Add(user, time.Now())
	if err != nil {
		return err
	}
	fmt.Println(secret)
	fmt.Fprintf(os.Stderr, "token %s for %s stored (hash only) in %s; copy it now, it is not shown again\n",
		tok.ID, tok.User, f.Path)
	return nil
}

func tokenList(f users.TokenFile, user string) error {
	list, err := f.List(user)
	for _, t := range list {
		fmt.Printf("%s  %s  created %s\n", t.ID, t.User, t.Created.Local().Format(time.RFC3339))
	}
	return err
}
