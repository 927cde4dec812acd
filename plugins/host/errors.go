package host

import (
	"fmt"
	"strings"
)

// ChecksumError refuses a plugin whose executable changed since weir.lock
// pinned it.
type ChecksumError struct {
	Kind, Path string
	// Want is the checksum in weir.lock, Got the executable's.
	Want, Got string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("backend plugin %s (%s) has changed since weir.lock pinned it: its checksum is %s, the lock says %s. "+
		"If you trust the new executable, accept it with: weir init -upgrade", e.Kind, e.Path, e.Got, e.Want)
}

// ProtocolError refuses a plugin that speaks another protocol version.
type ProtocolError struct {
	Kind, Path string
	// Plugin is the version the plugin speaks, Weir the one this weir
	// speaks.
	Plugin, Weir int
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("backend plugin %s (%s) speaks plugin protocol version %d, but this weir speaks version %d: "+
		"install a build of the plugin for protocol version %d", e.Kind, e.Path, e.Plugin, e.Weir, e.Weir)
}

// HandshakeError says an executable did not start as a Weir plugin: it is
// not one, it was built for another program (another magic cookie), or it
// failed before the handshake.
type HandshakeError struct {
	Kind, Path string
	// Reason says what went wrong; Stderr is the end of what the process
	// wrote to its stderr.
	Reason string
	Stderr []string
}

func (e *HandshakeError) Error() string {
	msg := fmt.Sprintf("backend plugin %s (%s) failed the plugin handshake: %s", e.Kind, e.Path, e.Reason)
	return msg + stderrSuffix(e.Stderr)
}

func stderrSuffix(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return "\nthe plugin's stderr ends with:\n  " + strings.Join(lines, "\n  ")
}
