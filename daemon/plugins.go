package daemon

import (
	"cmp"
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"

	"postline/config"
	"postline/plugins/host"
	"postline/plugins/received"
	"postline/plugins/returnpath"
)

// PluginPrefix starts the file name of a plugin found beside the daemons:
// a [[plugins]] table without a path runs PluginPrefix+name.
const PluginPrefix = "postline-plugin-"

// PluginSpecs turns the config's enabled plugins into plugins/host specs;
// it is the one place the two meet (config knows nothing of plugins/host,
// and plugins/host nothing of the config file). exeDir is the folder of
// the running daemon, where plugins without a path are found (but for
// the bundled ones in inDaemon).
func PluginSpecs(cfg *config.Config, exeDir string) []host.Spec {
	var specs []host.Spec
	for _, p := range cfg.Plugins {
		if !p.On() {
			continue
		}
		spec := host.Spec{
			Name: p.Name, Path: p.Path, Daemon: p.Daemon, Hooks: p.Hooks, Order: p.Order,
			Timeout: p.Timeout.D(), OnError: p.OnError, Config: p.Config,
		}
		if filter := inDaemon(p.Name); filter != nil && p.Path == "" {
			spec.InProcess = filter
		} else if spec.Path == "" {
			spec.Path = filepath.Join(exeDir, PluginPrefix+cmp.Or(p.Program, p.Name))
		}
		specs = append(specs, spec)
	}
	return specs
}

// inDaemon returns the bundled filter a daemon runs inside itself when
// the [[plugins]] table named name gives no path, nil for other names:
// each adds one trace field (RFC 5321 §4.4), less work than a call to
// another process, and none of them reads the body, blocks or keeps
// state. With a path they run as any plugin does
// (cmd/postline-plugin-received, ...-return-path).
func inDaemon(name string) any {
	switch name {
	case "received":
		return received.New()
	case "return-path":
		return returnpath.New()
	}
	return nil
}

// StartPlugins starts the plugins of daemon svc (see host.Start) and warns
// about each default plugin of svc the config turned off.
func StartPlugins(ctx context.Context, cfg *config.Config, svc string, log zerolog.Logger) (*host.Chain, error) {
	for _, p := range cfg.Plugins {
		if p.On() || p.Daemon != svc {
			continue
		}
		switch p.Name {
		case "return-path":
			log.Warn().Str("plugin", p.Name).Msg("return-path disabled: delivered mail will lack Return-Path (RFC 5321 §4.4)")
		case "received":
			log.Warn().Str("plugin", p.Name).Msg("received disabled: mail entering here will lack its Received field (RFC 5321 §4.4)")
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return host.Start(ctx, PluginSpecs(cfg, filepath.Dir(exe)), host.Options{Daemon: svc, Hostname: cfg.Hostname, Log: log,
		StateDir: PluginStateDir(cfg, svc)})
}

// PluginStateDir holds a folder per plugin of daemon svc, for state the
// plugin keeps across restarts (Sieve's vacation memory): inside the
// daemon's own state folder, so its user's.
func PluginStateDir(cfg *config.Config, svc string) string {
	return filepath.Join(cfg.StateDir, svc, "plugins")
}

// CheckPlugins starts every enabled plugin as its daemon would, then
// stops it: a plugin that refuses its [plugins.config] (a milter address
// that does not parse, a DKIM key that does not load) shows up in
// `postline check`, not at the next start.
func CheckPlugins(ctx context.Context, cfg *config.Config) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	specs := PluginSpecs(cfg, filepath.Dir(exe))
	var errs []error
	seen := map[string]bool{} // a bad spec fails every daemon's start alike
	for _, svc := range []string{"msa", "mta", "mda"} {
		c, err := host.Start(ctx, specs, host.Options{Daemon: svc, Hostname: cfg.Hostname, Log: zerolog.Nop()})
		if err != nil {
			if !seen[err.Error()] {
				errs = append(errs, err)
			}
			seen[err.Error()] = true
			continue
		}
		c.Close()
	}
	return errors.Join(errs...)
}
