package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"postline/address"
	"postline/dkimkey"
)

// parseKeys reads the keys tables of [plugins.config]: domain, selector
// and key_file (an absolute path: the plugin does not know the config's
// folder). Every problem is reported, naming the key and the fix.
func parseKeys(cfg map[string]any) (map[string]key, error) {
	var errs []error
	for k := range cfg {
		if k != "keys" {
			errs = append(errs, fmt.Errorf("%q: unknown key; only [[plugins.config.keys]] tables are read", k))
		}
	}
	tables, ok := cfg["keys"].([]any)
	if !ok || len(tables) == 0 {
		errs = append(errs, errors.New(`keys: add one [[plugins.config.keys]] table per domain: domain, selector, key_file`))
	}
	keys := map[string]key{}
	for i, t := range tables {
		table, _ := t.(map[string]any)
		domain, k, err := parseKey(table)
		if err != nil {
			errs = append(errs, fmt.Errorf("keys[%d]: %w", i, err))
			continue
		}
		keys[domain] = k
	}
	return keys, errors.Join(errs...)
}

func parseKey(table map[string]any) (string, key, error) {
	str := func(name string) string { s, _ := table[name].(string); return s }
	domain, selector, file := str("domain"), str("selector"), str("key_file")
	d, err := address.NormalizeDomain(domain)
	switch {
	case domain == "" || err != nil:
		return "", key{}, fmt.Errorf(`domain: give the signing domain, e.g. domain = "example.org"`)
	case selector == "":
		return "", key{}, fmt.Errorf(`selector: give the selector published in DNS, e.g. selector = "mail"`)
	case !filepath.IsAbs(file):
		return "", key{}, fmt.Errorf(`key_file: give the absolute path of the PEM private key`)
	}
	signer, err := dkimkey.Read(file)
	if err != nil {
		return "", key{}, fmt.Errorf("key_file: %w", err)
	}
	return d, key{selector: selector, signer: signer}, nil
}
