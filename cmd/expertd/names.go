package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/expertd/expertd/node/api"
)

// Expert names on the command line (docs/names.md): fetch takes a name or
// publisher/name where it takes a CID, and ls --versions lists a name's
// versions.

// resolveArg returns arg if it is a CID; else it asks the daemon what the
// name arg resolves to, says so on w, and returns that version's CID.
func resolveArg(ctx context.Context, c *api.Client, arg string, w io.Writer) (string, error) {
	if _, err := api.ParseCID(arg); err == nil {
		return arg, nil
	}
	info, err := c.Name(ctx, arg)
	var se *api.StatusError
	switch {
	case errors.As(err, &se) && se.Code == http.StatusNotFound:
		return "", fmt.Errorf("%q is neither a CID nor a name this node knows (expertd ls --remote lists them)", arg)
	case err != nil:
		return "", fmt.Errorf("%s: %w", arg, err)
	case info.Resolved == nil:
		return "", fmt.Errorf("%s: no trusted publisher's version is known (expertd ls --versions %s lists them; PUBLISHER/%s fetches one publisher's)", arg, arg, arg)
	}
	r := info.Resolved
	fmt.Fprintf(w, "%s: %s %s by %s\n", arg, r.CID, versionWord(r.Version), r.Publisher)
	return r.CID, nil
}

// lsVersions prints the versions the daemon knows of name.
func lsVersions(cmd *cobra.Command, c *api.Client, name string, asJSON bool) error {
	info, err := c.Name(cmd.Context(), name)
	if err != nil {
		return fmt.Errorf("ls --versions %s: %w", name, err)
	}
	if asJSON {
		return printJSON(cmd, info)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tCID\tNAME\tPUBLISHER\tPUBLISHED\tWHERE")
	for _, v := range info.Versions {
		mark := ""
		if r := info.Resolved; r != nil && r.CID == v.CID {
			mark = " <- " + name
		}
		published := "-"
		if !v.Published.IsZero() {
			published = v.Published.Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s%s\n", versionCol(v.Version), v.CID, v.Name, trustWord(v.Publisher, v.Trusted),
			published, versionWhere(v), mark)
	}
	return tw.Flush()
}

// versionWhere says where a version is: held (pinned or not), in service,
// or only announced.
func versionWhere(v api.NameVersion) string {
	w := "remote (" + plural(v.Providers, "provider") + ")"
	if v.Local {
		w = "local"
		if v.Pinned {
			w = "local, pinned"
		}
	}
	if v.InService {
		w += ", in service"
	}
	return w
}

// versionCol is a version for a table: "-" for none.
func versionCol(v uint64) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatUint(v, 10)
}

// versionWord is a version in a sentence.
func versionWord(v uint64) string {
	if v == 0 {
		return "(no version)"
	}
	return "version " + strconv.FormatUint(v, 10)
}

// publisherCol is an expert's publisher for ls: its peer ID, and whether it
// is trusted (trust.publishers) or an unsigned claim.
func publisherCol(e api.Expert) string {
	if e.Publisher == "" {
		return "-"
	}
	if !e.Signed {
		return e.Publisher + " (unsigned)"
	}
	return trustWord(e.Publisher, e.Trusted)
}

func trustWord(publisher string, trusted bool) string {
	if trusted {
		return publisher
	}
	return publisher + " (untrusted)"
}
