// Command expertd-demo is the compose cluster's one-shot demo: through the
// nodes' HTTP APIs it publishes an adapter on one node, waits until another
// node hears of it, fetches it there by CID and writes it out as a PEFT
// directory. It prints the CID on stdout and its steps on stderr.
//
// It exists because the image is FROM scratch: there is no shell to carry the
// CID from `expertd publish` to `expertd fetch`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/expertd/expertd/node/api"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "expertd-demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("expertd-demo", flag.ContinueOnError)
	from := fs.String("publish-api", "node1:5180", "API of the node that publishes")
	to := fs.String("fetch-api", "node2:5180", "API of the node that fetches")
	dir := fs.String("adapter", "/fixtures/python-lora-r16", "adapter directory, a path on the publishing node")
	name := fs.String("name", "python", "name of the expert")
	out := fs.String("o", "/data/demo/python", "output directory, a path on the fetching node")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	token := os.Getenv("EXPERTD_API_TOKEN")
	pub, got := api.NewClient(*from, token), api.NewClient(*to, token)

	for _, n := range []struct {
		addr string
		c    *api.Client
	}{{*from, pub}, {*to, got}} {
		if err := poll(ctx, func() (bool, error) { return n.c.Health(ctx) == nil, nil }); err != nil {
			return fmt.Errorf("%s is not up: %w", n.addr, err)
		}
	}

	e, err := pub.Publish(ctx, api.PublishRequest{Path: *dir, Name: *name})
	if err != nil {
		return fmt.Errorf("publish %s on %s: %w", *dir, *from, err)
	}
	logf("published %s on %s as %s (%d bytes)", *dir, *from, e.CID, e.Size)

	heard := func() (bool, error) {
		es, err := got.Experts(ctx, api.Filter{Remote: true})
		return slices.ContainsFunc(es, func(x api.Expert) bool { return x.CID == e.CID }), err
	}
	if err := poll(ctx, heard); err != nil {
		return fmt.Errorf("%s never heard of %s: %w", *to, e.CID, err)
	}
	logf("%s knows %s from the swarm; fetching", *to, e.CID)

	start := time.Now()
	t, err := got.StartFetch(ctx, e.CID)
	if err != nil {
		return fmt.Errorf("fetch %s on %s: %w", e.CID, *to, err)
	}
	for t.State == api.StateRunning {
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("fetch %s on %s: %w", e.CID, *to, err)
		}
		if t, err = got.Transfer(ctx, e.CID); err != nil {
			return fmt.Errorf("fetch %s on %s: %w", e.CID, *to, err)
		}
	}
	if t.State != api.StateDone {
		return fmt.Errorf("fetch %s on %s: %s", e.CID, *to, t.Error)
	}
	m, err := got.Materialize(ctx, e.CID, api.MaterializeRequest{Dir: *out})
	if err != nil {
		return fmt.Errorf("write %s on %s: %w", *out, *to, err)
	}
	logf("fetched %s on %s (%d bytes in %v) and wrote it to %s there", e.CID, *to, t.Total, time.Since(start).Round(time.Millisecond), m.Dir)
	fmt.Println(e.CID)
	return nil
}

// poll calls f every 200 ms until it reports true or ctx ends; the last error
// f returned explains a timeout.
func poll(ctx context.Context, f func() (bool, error)) error {
	var last error
	for {
		ok, err := f()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return errors.Join(err, last)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().UTC().Format("15:04:05.000")+" "+format+"\n", args...)
}
