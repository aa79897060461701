// Package plugins is postline's filter plugin contract: what a daemon and
// a filter plugin (a separate program, started over hashicorp/go-plugin
// and spoken to with gRPC) must agree on besides the service itself.
//
// The layout of the folder:
//
//	proto/    the gRPC service (filter.proto); `make proto` regenerates pb/
//	pb/       the generated Go code, committed
//	sdk/      what a Go plugin imports: small interfaces, verdicts, sdk.Serve
//	host/     what a daemon imports: starts, supervises and calls the plugins
//	returnpath/ the bundled Return-Path filter, on by default in the MDA
//	example/  a complete custom filter built with the SDK
//
// This package only holds constants; it must never import the host or the
// SDK, so that both can import it.
package plugins
