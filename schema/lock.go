package schema

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// LockFile is the name of the lock file at the root of a project. It is
// meant to be committed with the spec, like Terraform's
// .terraform.lock.hcl.
const LockFile = "weir.lock"

// LockFormatVersion is the version of the lock file format.
const LockFormatVersion = 1

// Lock is weir.lock: what a project pins outside its spec, so that the same
// spec runs the same code on every machine. Weir writes it (weir init
// -upgrade, and the first use of a plugin); people review it.
type Lock struct {
	FormatVersion int `json:"format_version"`
	// Plugins are the external backend plugins, by kind. A plugin whose
	// executable no longer has the pinned checksum is refused until
	// `weir init -upgrade` accepts it.
	Plugins map[string]*LockedPlugin `json:"plugins,omitempty"`
	// Images maps container image references to the digests they resolved
	// to (the resolve pass; the policy engine reads them).
	Images map[string]string `json:"images,omitempty"`
}

// LockedPlugin pins one plugin executable.
type LockedPlugin struct {
	// SHA256 is the executable's checksum, "sha256:<hex>".
	SHA256 string `json:"sha256"`
	// Protocol is the plugin protocol version it speaks.
	Protocol int `json:"protocol"`
	// Version is the plugin's own version, as it described itself.
	Version string `json:"version,omitempty"`
}

// ReadLock reads dir's weir.lock. A project without one has an empty lock
// (and no error).
func ReadLock(dir string) (*Lock, error) {
	p := filepath.Join(dir, LockFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return &Lock{FormatVersion: LockFormatVersion}, nil
	}
	if err != nil {
		return nil, err
	}
	l, err := DecodeLock(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", p, err)
	}
	return l, nil
}

// DecodeLock parses a lock file, refusing a format this weir does not know.
func DecodeLock(b []byte) (*Lock, error) {
	var l Lock
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("not a valid lock file: %v", err)
	}
	if l.FormatVersion != LockFormatVersion {
		return nil, fmt.Errorf("lock file format version %d; this weir reads version %d", l.FormatVersion, LockFormatVersion)
	}
	for kind, p := range l.Plugins {
		if p == nil || p.SHA256 == "" {
			return nil, fmt.Errorf("plugin %s has no sha256", kind)
		}
	}
	return &l, nil
}

// Encode renders the lock as indented JSON with sorted keys, ending in a
// newline: the same lock always gives the same bytes.
func (l *Lock) Encode() []byte {
	l.FormatVersion = LockFormatVersion
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		panic(err) // plain strings and numbers always encode
	}
	return append(b, '\n')
}

// Hash is the digest of the encoded lock, recorded in plans.
func (l *Lock) Hash() string {
	sum := sha256.Sum256(l.Encode())
	return "sha256:" + hex.EncodeToString(sum[:])
}

// WriteLock writes dir's weir.lock atomically (a temporary file renamed
// over it).
func WriteLock(dir string, l *Lock) error {
	p := filepath.Join(dir, LockFile)
	tmp, err := os.CreateTemp(dir, ".weir.lock-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(l.Encode()); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), p)
}
