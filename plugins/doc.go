// Package plugins will hold postline's filter plugin contract: gRPC over
// hashicorp/go-plugin, with hooks at connect, MAIL, RCPT, DATA and final
// delivery (issue 5). Until then no filter runs and no header is added
// by postline besides the MSA's Message-ID and Date.
package plugins
