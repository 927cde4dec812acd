// Command weir is the Weir CLI: validate, plan and apply declarative ML
// pipelines. All of it lives in internal/cli; main only exits with its code.
package main

import (
	"os"

	"weir.dev/weir/cmd/weir/internal/cli"
)

func main() { os.Exit(cli.Main()) }
