package api

import (
	"context"
	"errors"
	"time"

	"github.com/knaight/knaight/manager/internal/agents"
	"github.com/knaight/knaight/manager/internal/enforce"
	"github.com/knaight/knaight/manager/internal/trust"
)

// trustMaxAge bounds how stale a stored trust level may get from decay
// alone. Half-lives are days, so an hour moves no score by much.
const trustMaxAge = time.Hour

// Sweep runs the periodic work that time alone makes necessary until ctx
// ends: ANS registrations past their expiry become EXPIRED, stored trust
// levels are recomputed as signals expire and decay, and remembered webhook
// signatures older than the window are forgotten.
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
	now := s.Now()
	expired, err1 := agents.ExpireDue(ctx, s.Pool, now)
	recomputed, err2 := trust.RecomputeDue(ctx, s.Pool, trustMaxAge, now)
	err3 := s.webhook().ForgetDeliveries(ctx, s.Pool, now)
	err4 := enforce.ForgetReplays(ctx, s.Pool, now)
	if expired > 0 || recomputed > 0 {
		s.Log.InfoContext(ctx, "sweep", "ans_expired", expired, "trust_recomputed", recomputed)
	}
	return errors.Join(err1, err2, err3, err4)
}
