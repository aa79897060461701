package sdk

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"postline/plugins"
	"postline/plugins/pb"
)

// logger writes hclog JSON lines to the process's real stderr, which the
// host reads and re-emits into its own log tagged with the plugin's name.
// It is made at package init because go-plugin's Serve later replaces
// os.Stderr with a pipe the host does not log.
var logger = hclog.New(&hclog.LoggerOptions{
	Output:     os.Stderr,
	JSONFormat: true,
	Level:      levelFromEnv(),
})

// Log returns the plugin's logger. Its lines appear in the daemon's log
// with the plugin's name, e.g. sdk.Log().Info("checked", "score", 4.2).
// Never log message bodies or secrets.
func Log() hclog.Logger { return logger }

func levelFromEnv() hclog.Level {
	if l := hclog.LevelFromString(os.Getenv(plugins.LogLevelEnv)); l != hclog.NoLevel {
		return l
	}
	return hclog.Info
}

// Serve runs filter as a postline plugin until the host stops it. filter
// must implement at least one of ConnectFilter, MailFilter, RcptFilter,
// DataFilter and DeliverFilter. Serve does not return; run by hand
// (without the host's handshake cookie) it explains that and exits 1.
func Serve(filter any) {
	if len(hooksOf(filter)) == 0 {
		fmt.Fprintf(os.Stderr, "sdk.Serve: %T implements none of ConnectFilter, MailFilter, RcptFilter, DataFilter, DeliverFilter\n", filter)
		os.Exit(2)
	}
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: plugins.Handshake,
		Plugins:         goplugin.PluginSet{plugins.Name: &grpcPlugin{srv: &server{impl: filter}}},
		GRPCServer:      newGRPCServer,
		Logger:          logger,
	})
}

// newGRPCServer raises grpc's 4 MiB receive default: go-plugin raises only
// the host's limits, and a large header block must still fit in one message.
func newGRPCServer(opts []grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(plugins.MaxRecvMsgSize))...)
}

// grpcPlugin is the plugin side of go-plugin's GRPCPlugin: it registers the
// filter service. The host has its own client side, so this half refuses
// to be a client.
type grpcPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	srv *server
}

func (p *grpcPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterFilterServer(s, p.srv)
	return nil
}

func (p *grpcPlugin) GRPCClient(context.Context, *goplugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("sdk: a plugin is not a host")
}

// hooksOf lists the hooks filter implements, in the order the host calls them.
func hooksOf(filter any) []pb.Hook {
	var hooks []pb.Hook
	if _, ok := filter.(ConnectFilter); ok {
		hooks = append(hooks, pb.Hook_HOOK_CONNECT)
	}
	if _, ok := filter.(MailFilter); ok {
		hooks = append(hooks, pb.Hook_HOOK_MAIL)
	}
	if _, ok := filter.(RcptFilter); ok {
		hooks = append(hooks, pb.Hook_HOOK_RCPT)
	}
	if _, ok := filter.(DataFilter); ok {
		hooks = append(hooks, pb.Hook_HOOK_DATA)
	}
	if _, ok := filter.(DeliverFilter); ok {
		hooks = append(hooks, pb.Hook_HOOK_DELIVER)
	}
	if _, ok := filter.(DisconnectFilter); ok {
		hooks = append(hooks, pb.Hook_HOOK_DISCONNECT)
	}
	return hooks
}
