package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"weir.dev/weir/runtime/artifact"
	"weir.dev/weir/runtime/state"
	"weir.dev/weir/schema"
)

// project is a project folder with its state and artifact store open.
type project struct {
	dir   string
	db    *state.DB
	store *artifact.Store
}

// openProject opens (creating if needed) the project's .weir folder.
func openProject(ctx context.Context, dir string) (*project, error) {
	wd := weirDir(dir)
	if err := os.MkdirAll(wd, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", wd, err)
	}
	db, err := state.Open(ctx, filepath.Join(wd, "state.db"))
	if err != nil {
		return nil, err
	}
	store, err := artifact.Open(filepath.Join(wd, "artifacts"))
	if err != nil {
		db.Close()
		return nil, err
	}
	return &project{dir: dir, db: db, store: store}, nil
}

func (p *project) Close() error { return p.db.Close() }

// lock takes the state lock for an operation. A lock left by a weir that
// was killed on this machine is taken over, with a note; any other holder
// makes it fail at once.
func (p *project) lock(ctx context.Context, op string, note func(string)) (func() error, error) {
	info := state.NewLockInfo(op)
	info.User = currentUser()
	unlock, err := p.db.Lock(ctx, info)
	var le *state.LockedError
	if errors.As(err, &le) && le.Stale {
		if _, ferr := p.db.ForceUnlock(ctx); ferr == nil {
			note(fmt.Sprintf("note: released the lock of %s (pid %d), which is no longer running", le.Holder.Operation, le.Holder.PID))
			unlock, err = p.db.Lock(ctx, info)
		}
	}
	return unlock, err
}

// currentUser is WEIR_USER, else git's user.email, else $USER.
func currentUser() string {
	if u := os.Getenv("WEIR_USER"); u != "" {
		return u
	}
	if out, err := exec.Command("git", "config", "user.email").Output(); err == nil {
		if s := strings.TrimSpace(string(out)); s != "" {
			return s
		}
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

// planState lets the compiler's diff read the state.
type planState struct {
	ctx    context.Context
	db     *state.DB
	store  *artifact.Store
	serial int64

	// Filled by Prepare from bulk reads; nil maps mean "ask one by one".
	hits      map[string]*state.Execution
	parts     map[string]map[string]string
	durations map[string]time.Duration
	// registry: aliases by model, and each model's versions.
	aliases  map[string]map[string]int
	versions map[string][]*state.ModelVersion
}

// Prepare reads in three queries what the diff and the estimate will ask
// about every step.
func (s *planState) Prepare(steps []*schema.Step) {
	keys := make([]string, 0, len(steps))
	addrs := make([]string, 0, len(steps))
	for _, st := range steps {
		keys = append(keys, st.CacheKey)
		addrs = append(addrs, st.Address)
	}
	if hits, err := s.db.LookupCacheMany(s.ctx, keys); err == nil {
		s.hits = hits
	}
	if parts, err := s.db.LastKeyPartsMany(s.ctx, addrs); err == nil {
		s.parts = parts
	}
	if d, err := s.db.TypicalDurations(s.ctx); err == nil {
		s.durations = d
	}
	aliases := map[string]map[string]int{}
	versions := map[string][]*state.ModelVersion{}
	err := s.db.View(s.ctx, func(tx *state.Tx) error {
		models, err := tx.Models()
		if err != nil {
			return err
		}
		for _, m := range models {
			if aliases[m], err = tx.Aliases(m); err != nil {
				return err
			}
			if versions[m], err = tx.ModelVersions(m); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		s.aliases, s.versions = aliases, versions
	}
}

func newPlanState(ctx context.Context, p *project) (*planState, error) {
	serial, err := p.db.Serial(ctx)
	if err != nil {
		return nil, err
	}
	return &planState{ctx: ctx, db: p.db, store: p.store, serial: serial}, nil
}

func (s *planState) Serial() int64 { return s.serial }

func (s *planState) Lookup(key string) (bool, string) {
	var e *state.Execution
	if s.hits != nil {
		e = s.hits[key]
	} else if found, ok, err := s.db.LookupCache(s.ctx, key); err == nil && ok {
		e = found
	}
	if e == nil {
		return false, ""
	}
	for _, o := range e.Outputs {
		if err := s.store.Check(o.Digest, o.Size); err != nil {
			what := "is missing from the store"
			if errors.Is(err, artifact.ErrCorrupt) {
				what = "is corrupt"
			}
			return false, fmt.Sprintf("the cached result (run %s) cannot be reused: its output %s %s", e.RunID, o.Name, what)
		}
	}
	return true, ""
}

func (s *planState) LastKeyParts(address string) (map[string]string, bool) {
	if s.parts != nil {
		p, ok := s.parts[address]
		return p, ok
	}
	return s.db.LastKeyParts(s.ctx, address)
}

func (s *planState) Alias(model, alias string) (int, bool) {
	if s.aliases != nil {
		v := s.aliases[model][alias]
		return v, v > 0
	}
	v := 0
	err := s.db.View(s.ctx, func(tx *state.Tx) error {
		var err error
		v, err = tx.Alias(model, alias)
		return err
	})
	return v, err == nil && v > 0
}

// aliasDigest resolves model@alias to the digest of the version's artifact.
func aliasDigest(ctx context.Context, db *state.DB, model, alias string) (string, bool) {
	d := ""
	err := db.View(ctx, func(tx *state.Tx) error {
		v, err := tx.Alias(model, alias)
		if err != nil {
			return err
		}
		mv, err := tx.ModelVersion(model, v)
		if err != nil {
			return err
		}
		d = mv.ArtifactDigest
		return nil
	})
	return d, err == nil && d != ""
}

// TypicalDuration is a step's usual duration from the state's history.
func (s *planState) TypicalDuration(address string) (time.Duration, bool) {
	if s.durations != nil {
		d, ok := s.durations[address]
		return d, ok
	}
	return s.db.TypicalDuration(s.ctx, address)
}

// LatestVersion is the newest version of a model that passed its gates
// (approved, when approvedOnly).
func (s *planState) LatestVersion(model string, approvedOnly bool) (int, bool) {
	vs, prepared := s.versions[model]
	if !prepared && s.versions == nil {
		s.db.View(s.ctx, func(tx *state.Tx) error {
			var err error
			vs, err = tx.ModelVersions(model)
			return err
		})
	}
	best := 0
	for _, v := range vs {
		ok := v.Status == state.ModelApproved || (!approvedOnly && v.Status == state.ModelCandidate)
		if ok && v.Version > best {
			best = v.Version
		}
	}
	return best, best > 0
}

// AliasDigest feeds the graph pass the artifacts model aliases point at.
func (s *planState) AliasDigest(model, alias string) (string, bool) {
	return aliasDigest(s.ctx, s.db, model, alias)
}
