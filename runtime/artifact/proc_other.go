//go:build !unix

package artifact

// processAlive cannot tell on this platform and says yes, so CleanTemp only
// removes temp files older than a day.
func processAlive(pid int) bool { return true }

// isSyncUnsupported: folders cannot be synced on this platform.
func isSyncUnsupported(err error) bool { return true }
