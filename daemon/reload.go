package daemon

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"syscall"

	"github.com/rs/zerolog"

	"postline/certs"
	"postline/config"
	"postline/plugins/host"
)

// Reloader applies a changed config file to a running daemon on SIGHUP,
// without dropping a connection: the local domains, the TLS certificate
// (so a renewed one needs no restart) and the plugins, which are started
// anew beside the running ones and take over. Keys it cannot apply are
// logged as needing a restart. users_file needs no signal: it is read
// again whenever it changes.
type Reloader struct {
	Config  *config.Config // the running config; Reload updates what it shares
	Svc     string
	Log     zerolog.Logger
	Cert    *certs.Certificate // nil: the daemon has no TLS listener
	Plugins *host.Chain

	running []host.Spec // the plugins' specs since the last reload; nil: as started
}

// IgnoreHangup keeps an early SIGHUP from ending the daemon before Run
// handles it (the default action of SIGHUP is to exit).
func IgnoreHangup() { signal.Ignore(syscall.SIGHUP) }

// Run reloads at each SIGHUP until ctx ends.
func (r *Reloader) Run(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.Reload(ctx)
		}
	}
}

// Reload reads the config file again and applies it. A file that does
// not load changes nothing.
func (r *Reloader) Reload(ctx context.Context) {
	n, err := config.Load(r.Config.File)
	if err != nil {
		r.Log.Error().Err(err).Msg("config not reloaded")
		return
	}
	restart := r.Config.Reload(n)
	ok := true
	if r.Cert != nil {
		if err := r.Cert.Reload(n); err != nil {
			r.Log.Error().Err(err).Msg("certificate not reloaded; the old one stays")
			ok = false
		}
	}
	if err := r.reloadPlugins(ctx, n); err != nil {
		r.Log.Error().Err(err).Msg("plugins not reloaded; the running ones stay")
		ok = false
	}
	ev := r.Log.Info()
	if len(restart) > 0 {
		ev = r.Log.Warn().Strs("restart_needed_for", restart)
	}
	ev.Bool("complete", ok).Msg("config reloaded")
}

// reloadPlugins restarts the daemon's plugins when their settings changed.
func (r *Reloader) reloadPlugins(ctx context.Context, n *config.Config) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if r.running == nil {
		r.running = mine(PluginSpecs(r.Config, filepath.Dir(exe)), r.Svc)
	}
	specs := mine(PluginSpecs(n, filepath.Dir(exe)), r.Svc)
	if reflect.DeepEqual(r.running, specs) {
		return nil
	}
	if err := r.Plugins.Reload(ctx, specs); err != nil {
		return err
	}
	r.running = specs
	return nil
}

func mine(specs []host.Spec, svc string) []host.Spec {
	out := []host.Spec{}
	for _, s := range specs {
		if s.Daemon == svc {
			out = append(out, s)
		}
	}
	return out
}
