package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/config"
	"github.com/expertd/expertd/node/gossip"
)

// The commands in this file talk to a running daemon through its API.

func newPublishCmd(v *viper.Viper) *cobra.Command {
	var req api.PublishRequest
	cmd := &cobra.Command{
		Use:   "publish DIR|FILE.cpeft",
		Short: "Compress (if a directory) and publish an expert; prints its CID",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd, v)
			if err != nil {
				return err
			}
			c := api.NewClient(cfg.API.Listen, cfg.API.Token)
			if req.Path, err = filepath.Abs(args[0]); err != nil {
				return err
			}
			if req.Name == "" {
				req.Name = filepath.Base(req.Path)
			}
			// Everything that can be checked is, before the adapter is read.
			st, err := os.Stat(req.Path)
			if err != nil {
				return fmt.Errorf("publish %s: %w", args[0], withoutPath(err))
			}
			if err := gossip.CheckName(req.Name); err != nil {
				return fmt.Errorf("publish: --name: %w", err)
			}
			if _, err := cfg.Compress.Options(req.Density, req.Alpha, req.Scope); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			if !st.IsDir() { // a container: the daemon checks it again
				if err := checkContainer(req.Path); err != nil {
					return fmt.Errorf("publish %s: %w", args[0], err)
				}
			}
			if err := c.Health(cmd.Context()); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			if st.IsDir() {
				// Compress here, with progress, and hand the daemon the container.
				file, err := compressForPublish(cmd, req, cfg.Compress)
				switch {
				case errors.Is(err, errNoTemp):
					// No temporary directory here (a scratch image has no
					// /tmp): the daemon compresses it in its data dir.
					fmt.Fprintf(cmd.ErrOrStderr(), "publish %s: %v; the daemon compresses it\n", args[0], err)
				case err != nil:
					return fmt.Errorf("publish %s: %w", args[0], err)
				default:
					defer os.Remove(file)
					req.Path, req.Base = file, ""
				}
			}
			e, err := c.Publish(cmd.Context(), req)
			if err != nil {
				return fmt.Errorf("publish %s: %w", args[0], err)
			}
			if e.Version > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "published %s version %d\n", e.Name, e.Version)
			}
			fmt.Fprintln(cmd.OutOrStdout(), e.CID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Name, "name", "", "name of the expert (default: the directory's name); publishing a name again publishes its next version")
	f.Float64Var(&req.Density, "density", 0, "fraction kept (default: compress.density)")
	f.StringVar(&req.Alpha, "alpha", "", "auto or a multiplier of std (default: compress.alpha)")
	f.StringVar(&req.Scope, "scope", "", "global or tensor (default: compress.scope)")
	f.StringVar(&req.Base, "base", "", "base model directory, for a full fine-tune")
	return cmd
}

// errNoTemp: no temporary file could be made to compress into.
var errNoTemp = errors.New("cannot create a temporary file")

// compressForPublish compresses an adapter directory into a temporary
// container, showing progress, with the request's options over the
// configured defaults.
func compressForPublish(cmd *cobra.Command, req api.PublishRequest, def config.CompressConfig) (_ string, err error) {
	opts, err := def.Options(req.Density, req.Alpha, req.Scope)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp("", "expertd-publish-*.cpeft")
	if err != nil {
		return "", fmt.Errorf("%w in %s (%v)", errNoTemp, os.TempDir(), withoutPath(err))
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o644); err != nil { // the daemon may run as another user
		return "", err
	}
	src, err := loadAdapter(cmd.ErrOrStderr(), req.Path, req.Base)
	if err != nil {
		return "", err
	}
	if req.Alpha == "" && (def.Alpha == "" || def.Alpha == "auto") {
		alphaHint(cmd.ErrOrStderr(), src.PeftType)
	}
	if _, _, err := compress.Encode(f, src, opts...); err != nil {
		return "", err
	}
	return f.Name(), nil
}

func newFetchCmd(v *viper.Viper) *cobra.Command {
	var out, dtype string
	var force bool
	cmd := &cobra.Command{
		Use:   "fetch CID|NAME|PUBLISHER/NAME [-o DIR]",
		Short: "Fetch an expert from the swarm, verify it and (with -o) write it as a PEFT directory",
		Long: `Fetch an expert from the swarm by its CID, or by name: the latest version of the name
from the first trusted publisher using it (trust.publishers), or from the publisher named
(PUBLISHER/NAME, a peer ID: naming it vouches for it, as a CID does). See docs/names.md.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client(cmd, v)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if args[0], err = resolveArg(ctx, c, args[0], cmd.ErrOrStderr()); err != nil {
				return fmt.Errorf("fetch: %w", err)
			}
			var abs string
			if out != "" {
				// The daemon checks again where it writes; checking here
				// first saves a download that could not be written.
				if abs, err = filepath.Abs(out); err != nil {
					return err
				}
				if err := checkOutputDir(abs, force); err != nil {
					return fmt.Errorf("fetch %s: %w", args[0], err)
				}
			}
			t, err := c.StartFetch(ctx, args[0])
			if err != nil {
				return fmt.Errorf("fetch %s: %w", args[0], err)
			}
			if err := waitFetch(ctx, c, t, cmd.ErrOrStderr()); err != nil {
				return fmt.Errorf("fetch %s: %w", args[0], err)
			}
			if out == "" {
				fmt.Fprintln(cmd.OutOrStdout(), args[0])
				return nil
			}
			m, err := c.Materialize(ctx, args[0], api.MaterializeRequest{Dir: abs, DType: dtype, Overwrite: force})
			if err != nil {
				return fmt.Errorf("fetch %s: write %s: %w", args[0], out, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), m.Dir)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the expert as a PEFT adapter directory here (empty or missing, unless --force)")
	cmd.Flags().StringVar(&dtype, "dtype", "source", "dtype of the written tensors: source, f32, f16 or bf16")
	cmd.Flags().BoolVar(&force, "force", false, "write into an output directory that holds files, replacing the adapter's")
	return cmd
}

// checkOutputDir refuses an output directory that holds files, unless
// force, and a file.
func checkOutputDir(dir string, force bool) error {
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return fmt.Errorf("-o %s is not a directory", dir)
	}
	if force {
		return nil
	}
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("-o %s: %w", dir, withoutPath(err))
	case len(ents) > 0:
		return fmt.Errorf("%w: %s holds %d entries (--force writes into it)", compress.ErrNotEmpty, dir, len(ents))
	}
	return nil
}

func newLsCmd(v *viper.Viper) *cobra.Command {
	var f api.Filter
	var asJSON bool
	var versions string
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List experts held here (and with --remote, known in the swarm), or the versions of a name",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client(cmd, v)
			if err != nil {
				return err
			}
			if versions != "" {
				return lsVersions(cmd, c, versions, asJSON)
			}
			es, err := c.Experts(cmd.Context(), f)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd, es)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CID\tNAME\tVERSION\tPUBLISHER\tTYPE\tBASE MODEL\tSIZE\tWHERE")
			for _, e := range es {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.CID, e.Name, versionCol(e.Version), publisherCol(e),
					e.PeftType, e.BaseModel, human(e.Size), where(e))
			}
			return tw.Flush()
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.Remote, "remote", false, "include experts known from the swarm")
	fl.StringVar(&f.BaseModel, "base-model", "", "only experts for this base model")
	fl.StringVar(&f.PeftType, "peft-type", "", "only this peft type (lora, ia3, ...)")
	fl.StringVar(&f.Name, "name", "", "only names containing this")
	fl.StringVar(&versions, "versions", "", "list the versions known of this name (NAME or PUBLISHER/NAME) instead")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// where says where an expert is: here (pinned or not, and how many other
// peers serve it too) or only in the swarm.
func where(e api.Expert) string {
	n := max(e.ProviderCount, len(e.Providers))
	if !e.Local {
		return "remote (" + plural(n, "provider") + ")"
	}
	w := "local"
	if e.Pinned {
		w = "local, pinned"
	}
	if n > 0 {
		w += " (+" + plural(n, "other provider") + ")"
	}
	return w
}

func newPeersCmd(v *viper.Viper) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List connected peers and how each is reached (direct, relayed, hole-punched)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client(cmd, v)
			if err != nil {
				return err
			}
			id, err := c.Identity(cmd.Context())
			if err != nil {
				return err
			}
			ps, err := c.Peers(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd, struct {
					Node  api.Identity `json:"node"`
					Peers []api.Peer   `json:"peers"`
				}{id, ps})
			}
			printPeers(cmd.OutOrStdout(), id, ps)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: this node's identity and its peers")
	return cmd
}

// printPeers prints this node's reachability and relay reservations, then
// a table of its peers, each connection with its kind.
func printPeers(w io.Writer, id api.Identity, ps []api.Peer) {
	reach := id.Reachability
	if reach == "" {
		reach = "unknown"
	}
	fmt.Fprintf(w, "reachability: %s", reach)
	if id.RelayService {
		fmt.Fprint(w, "; relay service on")
	}
	fmt.Fprintln(w)
	for _, r := range id.Reservations {
		fmt.Fprintf(w, "relay reservation: %s %v\n", r.Relay, r.Addrs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tLATENCY\tCONNECTION\tADDRESS")
	for _, p := range ps {
		latency := "-" // not measured yet
		if p.LatencyMS > 0 {
			latency = fmt.Sprintf("%.1f ms", p.LatencyMS)
		}
		if len(p.Conns) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t%s\n", p.ID, latency, strings.Join(p.Addrs, " "))
		}
		for _, c := range p.Conns {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.ID, latency, connKind(c), c.Addr)
		}
	}
	tw.Flush()
}

// connKind is a connection's kind, with a relay's limits.
func connKind(c api.Conn) string {
	if c.Kind != "relayed" || c.LimitBytes == 0 && c.LimitSeconds == 0 {
		return c.Kind
	}
	lim := []string{}
	if c.LimitBytes > 0 && c.LimitBytes < 1<<62 {
		lim = append(lim, human(int64(c.LimitBytes)))
	}
	if c.LimitSeconds > 0 && c.LimitSeconds < 1<<31 {
		lim = append(lim, (time.Duration(c.LimitSeconds) * time.Second).String())
	}
	if len(lim) == 0 {
		return c.Kind
	}
	return c.Kind + " (limit " + strings.Join(lim, ", ") + ")"
}

func newIDCmd(v *viper.Viper) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "id",
		Short: "Print this node's peer ID and addresses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client(cmd, v)
			if err != nil {
				return err
			}
			id, err := c.Identity(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd, id)
			}
			printIdentity(cmd.OutOrStdout(), id)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printIdentity prints the node's peer ID, then each address on a line of
// its own, ready to pass to --bootstrap.
func printIdentity(w io.Writer, id api.Identity) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "peer id\t%s\n", id.ID)
	for i, a := range id.Addrs {
		k := ""
		if i == 0 {
			k = "addresses"
		}
		fmt.Fprintf(tw, "%s\t%s\n", k, a)
	}
	reach := cmp.Or(id.Reachability, "unknown")
	if id.RelayService {
		reach += "; relay service on"
	}
	fmt.Fprintf(tw, "reachability\t%s\n", reach)
	for _, r := range id.Reservations {
		fmt.Fprintf(tw, "relay reservation\t%s\n", r.Relay)
	}
	tw.Flush()
}

func newPinCmd(v *viper.Viper, pin bool) *cobra.Command {
	use, short := "pin CID", "Keep an expert: never evict it"
	if !pin {
		use, short = "unpin CID", "Let an expert be evicted when the store is over quota"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := api.ParseCID(args[0]); err != nil {
				return fmt.Errorf("%s: %w", cmd.Name(), err)
			}
			c, err := client(cmd, v)
			if err != nil {
				return err
			}
			return c.Pin(cmd.Context(), args[0], pin)
		},
	}
}

func newRmCmd(v *viper.Viper) *cobra.Command {
	return &cobra.Command{
		Use:   "rm CID",
		Short: "Remove an expert from this node",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := api.ParseCID(args[0]); err != nil {
				return fmt.Errorf("rm: %w", err)
			}
			c, err := client(cmd, v)
			if err != nil {
				return err
			}
			return c.Remove(cmd.Context(), args[0])
		},
	}
}

func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// plural says "1 provider", "2 providers".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
