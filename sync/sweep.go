package sync

// sweepRequest is SweepStale's input, queued in order with kernel events.
type sweepRequest struct{}

// SweepStale deletes, now, the routes a previous instance left (in the
// kernel and XDP) that nothing wants any more, instead of when
// Options.StaleAfter has passed: call it once BGP has converged (every
// neighbor sent End-of-RIB). The sweep runs on the worker, in order with
// the BGP changes and kernel events queued before the call (best paths
// passed to Best before SweepStale are installed, not swept); requested
// before the first kernel snapshot, it happens right after it. StaleAfter
// stays the upper bound. It never blocks; a second call sweeps again
// (nothing is stale any more: a no-op but for leftovers of other metrics).
func (s *Syncer) SweepStale() {
	s.inMu.Lock()
	s.kernelIn = append(s.kernelIn, sweepRequest{})
	s.inMu.Unlock()
	s.kick()
}

// sweepRequested handles a SweepStale request on the worker (under s.mu).
func (st *state) sweepRequested() {
	if !st.haveSnapshot {
		st.sweepWanted = true // the first snapshot sweeps
		return
	}
	st.log.Info("sweeping stale routes: BGP converged")
	st.sweepStale()
}
