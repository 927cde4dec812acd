// Command weir-launcher runs a step inside a container that shares no
// folder with weir: it moves the step's inputs and outputs between an
// object store and /weir/, runs the step's command under the step
// contract, and exits with its code. Build it static (CGO_ENABLED=0) and
// add it to the step's image with launcher.AddToImage; everything else is
// in package weir.dev/weir/plugins/kubernetes/launcher.
package main

import (
	"context"
	"os"

	"weir.dev/weir/plugins/kubernetes/launcher"
)

func main() { os.Exit(launcher.Run(context.Background(), os.Args[1:])) }
