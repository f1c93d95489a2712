package webhooks

import (
	"context"
	"time"

	"github.com/pyairtable/automation-domain/internal/tenant"
)

// Sweep wakes the dispatchers of endpoints with a delivery due more than grace ago that no
// sender holds: a wake-up that was lost (Temporal unreachable when the message came, a crash
// between storing and signalling) or a dispatcher that ended. It also forgets the replay keys of
// inbound webhooks older than the replay window (Settings.ReplayWindow). It returns how many
// endpoints it woke.
func (s *Service) Sweep(ctx context.Context, grace time.Duration) (int, error) {
	now := s.now()
	// Every tenant's endpoints (each dispatcher is woken for its own tenant: signalDispatcher).
	ctx = tenant.System(ctx)
	ids, err := s.store.OverdueWebhookEndpoints(ctx, now.Add(-grace), now, 1000)
	if err != nil {
		return 0, err
	}
	if err := s.waker.wakeAll(ctx, ids); err != nil {
		return 0, err
	}
	woken := len(ids)
	if _, err := s.store.PruneWebhookSeen(ctx, s.now().Add(-s.settings.ReplayWindow)); err != nil {
		return woken, err
	}
	return woken, nil
}

// RunSweeper calls Sweep every interval until ctx ends (worker processes run it).
func (s *Service) RunSweeper(ctx context.Context, interval, grace time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := s.Sweep(ctx, grace)
			if err != nil && ctx.Err() == nil {
				s.log.Warn("webhook sweep", "error", err)
			}
			if n > 0 {
				s.log.Info("woke webhook dispatchers with overdue deliveries", "endpoints", n)
			}
		}
	}
}
