//go:build linux

package host

import "syscall"

// setPdeathsig kills the plugin if weir dies without closing it.
func setPdeathsig(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
