package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"postline/config"
	"postline/mda"
	"postline/users"
)

func userCommand(cfg *config.Config, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	var err error
	switch {
	case args[0] == "list" && len(args) == 1:
		err = userList(cfg)
	case args[0] == "add" && len(args) == 2:
		err = userAdd(cfg, args[1])
	case args[0] == "del" && len(args) == 2:
		err = userDel(cfg, args[1])
	default:
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "postline: %v\n", err)
		return 1
	}
	return 0
}

func userList(cfg *config.Config) error {
	list, err := users.List(cfg.UsersFile)
	for _, u := range list {
		fmt.Println(u)
	}
	return err
}

func userAdd(cfg *config.Config, address string) error {
	address = users.Normalize(address)
	local, domain, ok := strings.Cut(address, "@")
	if !ok || strings.Contains(domain, "@") || !mda.SafeFolderName(local) {
		return fmt.Errorf("%q is not an address like user@%s", address, cfg.Domains[0])
	}
	if !cfg.IsLocalDomain(domain) {
		return fmt.Errorf("%s is not a local domain; add it to domains in %s", domain, cfg.File)
	}
	password, err := readPassword(os.Stdin)
	if err != nil {
		return err
	}
	if err := users.Set(cfg.UsersFile, address, password, bcrypt.DefaultCost); err != nil {
		return err
	}
	fmt.Printf("set password of %s in %s\n", address, cfg.UsersFile)
	return nil
}

// readPassword prompts twice on a terminal; otherwise it reads one line
// from stdin without its line end.
func readPassword(stdin *os.File) (string, error) {
	fd := int(stdin.Fd())
	if !term.IsTerminal(fd) {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password: %w", err)
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			return "", errors.New("empty password on stdin")
		}
		return line, nil
	}
	fmt.Fprint(os.Stderr, "Password: ")
	first, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	fmt.Fprint(os.Stderr, "Again: ")
	second, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if string(first) != string(second) || len(first) == 0 {
		return "", errors.New("passwords empty or not the same; nothing changed")
	}
	return string(first), nil
}

// userDel deletes the account, then its API tokens and its webhook,
// which the HTTP API would refuse anyway once the account is gone.
func userDel(cfg *config.Config, user string) error {
	if err := users.Delete(cfg.UsersFile, user); err != nil {
		return err
	}
	fmt.Printf("deleted %s\n", users.Normalize(user))
	tokens := users.TokenFile{Path: cfg.MSA.TokensFile, Like: cfg.UsersFile}
	list, err := tokens.List(user)
	for _, t := range list {
		if err == nil {
			err = tokens.Remove(user, t.ID)
		}
	}
	if err != nil {
		return fmt.Errorf("the account is deleted, but not its API tokens: %w (remove them with `postline token remove`)", err)
	}
	hooks := users.WebhookFile{Path: cfg.WebhooksFile(), Like: cfg.UsersFile}
	if err := hooks.Remove(user); err != nil && !errors.Is(err, users.ErrNoWebhook) {
		return fmt.Errorf("the account is deleted, but not its webhook: %w", err)
	}
	return nil
}
