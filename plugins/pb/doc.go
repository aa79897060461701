// Package pb is the Go code generated from plugins/proto/filter.proto by
// `make proto`: the messages and the gRPC client and server of the filter
// service. Never edit the generated files; change the .proto and regenerate.
package pb
