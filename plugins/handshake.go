package plugins

import goplugin "github.com/hashicorp/go-plugin"

// Handshake is go-plugin's handshake for filter plugins. The cookie is not
// security: it only stops a plugin binary run by hand from waiting for a
// host that never comes (go-plugin prints an explanation instead).
// ProtocolVersion changes only with an incompatible filter.proto.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "POSTLINE_PLUGIN",
	MagicCookieValue: "filter-v1",
}

// Name is the name under which the filter service is dispensed; one per binary.
const Name = "filter"

// MaxChunk is the largest body chunk the host sends in one DataChunk, far
// below gRPC's 4 MiB default message limit.
const MaxChunk = 64 << 10

// MaxRecvMsgSize is the gRPC receive limit the SDK sets on the plugin's
// server: room for a header block of any size the daemons accept
// (limits.max_header_size) inside one message.
const MaxRecvMsgSize = 64 << 20

// LogLevelEnv names the environment variable through which the host tells
// a plugin the lowest log level it keeps, so a plugin does not write lines
// the host drops: "trace", "debug", "info", "warn" or "error".
const LogLevelEnv = "POSTLINE_PLUGIN_LOG_LEVEL"
