package daemon

import (
	"context"
	"errors"
	"log/slog"

	"golang.org/x/sync/errgroup"

	xsync "github.com/xdprouter/xdprouter/sync"
)

// The lifecycle sees the components through these interfaces, so that a
// test can record the shutdown order.

// speaker is the BGP speaker (*bgp.Speaker).
type speaker interface {
	Start(context.Context) error
	Stop()
}

// syncLayer is the sync layer (*sync.Syncer).
type syncLayer interface {
	Run(ctx context.Context, events <-chan any) error
	RemoveKernelRoutes() error
	Counts() xsync.Counts
}

type closeFunc func() error

func (f closeFunc) Close() error { return f() }

// closer is a handle closed at the end, named for the log.
type closer struct {
	name string
	c    interface{ Close() error }
}

func closeAll(hs []closer, log *slog.Logger) {
	for _, h := range hs {
		if err := h.c.Close(); err != nil {
			log.Error("close "+h.name, "err", err)
		}
	}
}

type components struct {
	log        *slog.Logger
	bgp        speaker // nil: BGP off
	sync       syncLayer
	watch      func(context.Context, chan<- any) error // kernel FIB events into sync
	serve      func(context.Context) error             // HTTP API until ctx ends
	reload     func(context.Context)                   // SIGHUP handling until ctx ends; may be nil
	keepRoutes bool                                    // fib.keep-routes-on-exit
	background []func(context.Context) error           // run until ctx ends (e.g. the bypass watcher)
	handles    []closer                                // closed last, in order (FIB, then data path)
}

// run runs the components until ctx ends or one fails, then shuts down in
// this order: BGP stops (no more best-path changes; its withdrawals are not
// passed on), then sync (it has applied what it got), then the kernel
// routes xdprouterd installed are removed (unless keepRoutes), then the
// handles are closed, the XDP data path last.
func (c components) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	// Sync has its own context: it must outlive BGP's shutdown.
	syncCtx, stopSync := context.WithCancel(context.Background())
	defer stopSync()
	events := make(chan any, 4096)
	g.Go(func() error { return c.watch(gctx, events) })
	g.Go(func() error { return c.sync.Run(syncCtx, events) })
	g.Go(func() error { return c.serve(gctx) })
	for _, f := range c.background {
		g.Go(func() error { return f(gctx) })
	}
	var startErr error
	if c.bgp != nil {
		if startErr = c.bgp.Start(gctx); startErr != nil {
			cancel()
		}
	}
	if startErr == nil && c.reload != nil {
		go c.reload(gctx)
	}
	// Stopped here, after Start returned: a signal during start-up must not
	// stop BGP first and let Start bring it up again afterwards.
	<-gctx.Done()
	if c.bgp != nil {
		c.bgp.Stop()
	}
	stopSync()
	err := errors.Join(startErr, g.Wait())
	if c.keepRoutes {
		n := c.sync.Counts()
		c.log.Info("keeping installed routes in the kernel (fib.keep-routes-on-exit)", "ipv4", n.FIB4, "ipv6", n.FIB6)
	} else if rerr := c.sync.RemoveKernelRoutes(); rerr != nil {
		c.log.Error("remove kernel routes", "err", rerr)
	}
	closeAll(c.handles, c.log)
	return err
}
