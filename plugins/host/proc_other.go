//go:build unix && !linux

package host

import "syscall"

func setPdeathsig(*syscall.SysProcAttr) {}
