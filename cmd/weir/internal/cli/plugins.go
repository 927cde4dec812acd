package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/spf13/cobra"

	"weir.dev/weir/compiler"
	"weir.dev/weir/plugins/host"
	"weir.dev/weir/plugins/sdk"
	"weir.dev/weir/schema"
)

// pluginRow is one line of weir plugins list.
type pluginRow struct {
	Kind     string   `json:"kind"`
	Path     string   `json:"path"`
	Version  string   `json:"version,omitempty"`
	Protocol int      `json:"protocol,omitempty"`
	SHA256   string   `json:"sha256,omitempty"`
	Lock     string   `json:"lock"`
	Error    string   `json:"error,omitempty"`
	Shadowed []string `json:"shadowed,omitempty"`
}

func newPluginsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "List the backend plugins this project can use",
	}
	list := &cobra.Command{
		Use:   "list [DIR]",
		Short: "List backend kinds: built-ins, and plugins found on the plugin path with version, protocol and checksum",
		Long: `List the backend kinds a project can use: the built-in ones, then every
executable named weir-backend-KIND in the project's .weir/plugins, the folders
of $WEIR_PLUGIN_PATH, then $PATH (the first of a kind wins). Each plugin is
started to ask its version and protocol, unless its checksum no longer
matches the one weir.lock pins: such a plugin is not run until
weir init -upgrade accepts it.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := projectDir(args)
			rows, err := listPlugins(cmd, dir)
			if err != nil {
				return err
			}
			failed := false
			for _, r := range rows {
				failed = failed || r.Error != ""
			}
			if asJSON {
				if err := printJSON(cmd.OutOrStdout(), rows); err != nil {
					return err
				}
			} else {
				w := table(cmd.OutOrStdout())
				fmt.Fprintln(w, "KIND\tVERSION\tPROTOCOL\tSHA256\tLOCK\tPATH")
				for _, r := range rows {
					proto := "-"
					if r.Protocol != 0 {
						proto = strconv.Itoa(r.Protocol)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Kind, orDash(r.Version), proto, orDash(shortDigest(r.SHA256)), r.Lock, r.Path)
				}
				w.Flush()
				for _, r := range rows {
					if r.Error != "" {
						fmt.Fprintf(cmd.ErrOrStderr(), "error: %s\n", r.Error)
					}
					for _, s := range r.Shadowed {
						fmt.Fprintf(cmd.ErrOrStderr(), "note: %s is not used: %s comes first on the plugin path\n", s, r.Path)
					}
				}
			}
			if failed {
				return exitError{1}
			}
			return nil
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(list)
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// listPlugins describes the built-ins and every plugin on the path.
func listPlugins(cmd *cobra.Command, dir string) ([]pluginRow, error) {
	lock, err := schema.ReadLock(dir)
	if err != nil {
		return nil, err
	}
	var rows []pluginRow
	for _, k := range builtinKinds() {
		rows = append(rows, pluginRow{Kind: k, Path: "(built in)", Version: Version, Protocol: sdk.ProtocolVersion, Lock: "-"})
	}
	for _, f := range host.Discover(host.SearchPath(dir)) {
		row := pluginRow{Kind: f.Kind, Path: f.Path, Shadowed: f.Shadowed, Lock: "not pinned"}
		if builtins[f.Kind] != nil {
			row.Lock = "ignored"
			row.Error = fmt.Sprintf("%s is not used: %s is a built-in kind", f.Path, f.Kind)
			rows = append(rows, row)
			continue
		}
		sum, err := host.FileSHA256(f.Path)
		if err != nil {
			row.Error = err.Error()
			rows = append(rows, row)
			continue
		}
		row.SHA256 = "sha256:" + sum
		if pin := lock.Plugins[f.Kind]; pin != nil {
			if pin.SHA256 != row.SHA256 {
				row.Lock = "changed"
				row.Error = (&host.ChecksumError{Kind: f.Kind, Path: f.Path, Want: pin.SHA256, Got: row.SHA256}).Error()
				rows = append(rows, row)
				continue
			}
			row.Lock = "pinned"
		}
		p, err := host.Open(cmd.Context(), host.Options{Kind: f.Kind, Name: f.Kind, Path: f.Path, SHA256: row.SHA256})
		if err != nil {
			var pe *host.ProtocolError
			if errors.As(err, &pe) {
				row.Protocol = pe.Plugin
			}
			row.Error = err.Error()
			rows = append(rows, row)
			continue
		}
		d := p.Description()
		p.Close()
		row.Version, row.Protocol = d.Version, d.ProtocolVersion
		rows = append(rows, row)
	}
	return rows, nil
}

// pinPlugins records in weir.lock the checksum, protocol and version of the
// plugin of every external kind the spec uses, accepting executables that
// changed, and drops the kinds it no longer uses (weir init -upgrade).
func pinPlugins(cmd *cobra.Command, dir string) error {
	out := cmd.OutOrStdout()
	opts := compileOptions(dir)
	opts.StopAfter = "load"
	res, ds := compiler.Compile(cmd.Context(), opts)
	if ds.HasErrors() {
		return fail(cmd.ErrOrStderr(), ds)
	}
	lock, err := schema.ReadLock(dir)
	if err != nil {
		return err
	}
	kinds := map[string][]string{} // kind -> backend names
	for name, b := range res.Load.Project.Backends {
		if builtins[b.Kind] == nil {
			kinds[b.Kind] = append(kinds[b.Kind], name)
		}
	}
	for _, names := range kinds {
		sort.Strings(names)
	}
	order := make([]string, 0, len(kinds))
	for k := range kinds {
		order = append(order, k)
	}
	sort.Strings(order)
	found := host.Discover(host.SearchPath(dir))
	next := map[string]*schema.LockedPlugin{}
	for _, kind := range order {
		var f *host.Found
		for i := range found {
			if found[i].Kind == kind {
				f = &found[i]
			}
		}
		if f == nil {
			return fmt.Errorf("backend %s is of kind %q, but no plugin %s%s is in %s", kinds[kind][0], kind, host.Prefix, kind, searchPlaces)
		}
		sum, err := host.FileSHA256(f.Path)
		if err != nil {
			return err
		}
		name := kinds[kind][0]
		p, err := host.Open(cmd.Context(), host.Options{Kind: kind, Name: name, Path: f.Path, SHA256: "sha256:" + sum,
			Settings: res.Load.Project.Backends[name]})
		if err != nil {
			return err
		}
		d := p.Description()
		p.Close()
		pin := &schema.LockedPlugin{SHA256: "sha256:" + sum, Protocol: d.ProtocolVersion, Version: d.Version}
		next[kind] = pin
		switch old := lock.Plugins[kind]; {
		case old == nil:
			fmt.Fprintf(out, "pinned    %s %s (protocol %d, %s) from %s\n", kind, d.Version, d.ProtocolVersion, pin.SHA256, f.Path)
		case old.SHA256 != pin.SHA256:
			fmt.Fprintf(out, "upgraded  %s %s (protocol %d): %s -> %s from %s\n", kind, d.Version, d.ProtocolVersion, old.SHA256, pin.SHA256, f.Path)
		default:
			fmt.Fprintf(out, "unchanged %s %s (%s)\n", kind, d.Version, pin.SHA256)
		}
	}
	for kind := range lock.Plugins {
		if next[kind] == nil {
			fmt.Fprintf(out, "removed   %s (no backend of this kind in the spec)\n", kind)
		}
	}
	lock.Plugins = next
	if len(next) == 0 && len(lock.Images) == 0 {
		if _, err := os.Stat(filepath.Join(dir, schema.LockFile)); err != nil {
			fmt.Fprintln(out, "No external backend plugins to pin.")
			return nil
		}
	}
	if err := schema.WriteLock(dir, lock); err != nil {
		return err
	}
	fmt.Fprintf(out, "Wrote %s.\n", schema.LockFile)
	return nil
}

// newPluginServeCmd is the hidden `weir plugin serve KIND`: this executable
// serving one of its built-in backends over the plugin protocol.
func newPluginServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "plugin",
		Short:  "Serve a built-in backend as a plugin (used by weir itself)",
		Hidden: true,
	}
	serve := &cobra.Command{
		Use:   "serve KIND",
		Short: "Serve the built-in backend KIND over the plugin protocol",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mk := builtins[args[0]]
			if mk == nil {
				return fmt.Errorf("no built-in backend %q (built in: %v)", args[0], builtinKinds())
			}
			sdk.Serve(mk())
			return nil
		},
	}
	cmd.AddCommand(serve)
	return cmd
}
