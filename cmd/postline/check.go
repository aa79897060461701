package main

import (
	"crypto/tls"
	"fmt"
	"os"

	"postline/config"
	"postline/users"
)

// check reports problems that config.Load cannot see: files the config
// names that are missing or unreadable.
func check(cfg *config.Config) int {
	ok := true
	if _, err := users.List(cfg.UsersFile); err != nil {
		fmt.Fprintf(os.Stderr, "%s: users_file: %v\n", cfg.File, err)
		ok = false
	}
	if _, err := users.OpenAliases(cfg.AliasesFile); err != nil {
		fmt.Fprintf(os.Stderr, "%s: aliases_file: %v\n", cfg.File, err)
		ok = false
	}
	if cfg.TLS.Cert != "" {
		if _, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key); err != nil {
			fmt.Fprintf(os.Stderr, "%s: tls.cert/tls.key: %v (give a PEM certificate chain and its key)\n", cfg.File, err)
			ok = false
		}
	}
	if !ok {
		return 1
	}
	fmt.Printf("%s: ok\n", cfg.File)
	return 0
}
