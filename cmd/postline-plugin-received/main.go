// Command postline-plugin-received runs the bundled received filter
// (plugins/received) as a plugin process, for a [[plugins]] table that
// names its path; by default the daemons run it inside themselves.
package main

import (
	"postline/plugins/received"
	"postline/plugins/sdk"
)

func main() { sdk.Serve(received.New()) }
