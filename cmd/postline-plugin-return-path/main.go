// Command postline-plugin-return-path runs the bundled return-path filter
// (plugins/returnpath) as a plugin process, for a [[plugins]] table that
// names its path; by default the MDA runs it inside itself.
package main

import (
	"postline/plugins/returnpath"
	"postline/plugins/sdk"
)

func main() { sdk.Serve(returnpath.New()) }
