package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"postline/config"
	"postline/users"
)

// aliasCommand is `postline alias add|del|list`: the aliases file edited
// as `postline user` edits the users file.
func aliasCommand(cfg *config.Config, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	if cfg.AliasesFile == "" {
		fmt.Fprintf(os.Stderr, "postline: %s has no aliases_file; add aliases_file = %q there\n", cfg.File, "/etc/postline/aliases")
		return 1
	}
	var err error
	switch {
	case args[0] == "list" && len(args) == 1:
		var lines []string
		lines, err = users.ListAliases(cfg.AliasesFile)
		for _, l := range lines {
			fmt.Println(l)
		}
	case args[0] == "add" && len(args) >= 3:
		if err = checkAliasDomain(cfg, args[1]); err == nil {
			err = users.SetAlias(cfg.AliasesFile, args[1], splitTargets(args[2:]))
		}
		if err == nil {
			fmt.Printf("%s goes to %s (%s)\n", args[1], strings.Join(splitTargets(args[2:]), ", "), cfg.AliasesFile)
		}
	case args[0] == "del" && len(args) == 2:
		if err = users.DeleteAlias(cfg.AliasesFile, args[1]); err == nil {
			fmt.Printf("deleted %s from %s\n", args[1], cfg.AliasesFile)
		}
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

// checkAliasDomain refuses an alias outside the local domains: no mail
// for it would ever reach this host.
func checkAliasDomain(cfg *config.Config, alias string) error {
	key, err := users.AliasKey(alias)
	if err != nil {
		return err
	}
	domain := key[strings.LastIndexByte(key, '@')+1:]
	if !cfg.IsLocalDomain(domain) {
		return errors.New(alias + ": " + domain + " is not a local domain; add it to domains in " + cfg.File)
	}
	return nil
}

// splitTargets accepts targets as separate arguments or comma lists.
func splitTargets(args []string) []string {
	var out []string
	for _, a := range args {
		for _, t := range strings.Split(a, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}
