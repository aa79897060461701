package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"

	"postline/config"
	"postline/daemon"
	"postline/users"
)

// check reports problems that config.Load cannot see: files the config
// names that are missing or unreadable, and plugins that refuse their
// own config.
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
	if err := daemon.CheckPlugins(context.Background(), cfg); err != nil {
		fmt.Fprintf(os.Stderr, "%s: [[plugins]]: %v\n", cfg.File, err)
		ok = false
	}
	if !ok {
		return 1
	}
	fmt.Printf("%s: ok\n", cfg.File)
	return 0
}
