// Package groupcommit is the one group-commit signaller of the service: callers that hand work to
// the same long-running workflow while a signal to it is in flight share the next signal, so a
// burst costs a few SignalWithStart calls, not one per caller. The rules engine's dispatcher
// (one line per evaluator partition, the events as items) and the webhook module's waker (one
// line per endpoint dispatcher, no payload) use it.
package groupcommit

import (
	"context"
	"sync"
	"time"
)

// DefaultTimeout bounds one Send when Signaller.Timeout is zero. Both users recover from a
// signal that fails (the rules engine's redispatch loop hands undispatched events off again,
// the webhook sweeper wakes dispatchers a wake-up missed), so a short bound is better than a
// line held up behind a call that hangs while Temporal is unreachable; the Temporal client's
// own deadline (TEMPORAL_RPC_TIMEOUT, 1 s by default) usually ends such a call first.
const DefaultTimeout = 5 * time.Second

// Signaller sends items to keyed lines (one workflow each) in group commits. The zero value is
// not usable: set Send. A Signaller must not be copied after first use.
type Signaller[K comparable, T any] struct {
	// Send delivers one batch of items for key (one signal). It runs on one goroutine per key at
	// a time, in the order the items were submitted, with a context bounded by Timeout.
	Send func(ctx context.Context, key K, items []T) error
	// MaxBatch bounds the items of one Send (0: no bound).
	MaxBatch int
	// Timeout bounds one Send (0: DefaultTimeout); callers wait at most until their own context
	// ends.
	Timeout time.Duration

	mu    sync.Mutex
	lines map[K]*line[T]
}

// line gathers the submissions to one key while a Send is in flight.
type line[T any] struct {
	waiting []submission[T]
}

type submission[T any] struct {
	item T
	done chan error
}

// Submit hands item to key's line and returns once a Send that includes it, started after this
// call began, has returned (with its error), or ctx has ended (the Send goes on without it).
func (s *Signaller[K, T]) Submit(ctx context.Context, key K, item T) error {
	sub := submission[T]{item: item, done: make(chan error, 1)}
	s.mu.Lock()
	if s.lines == nil {
		s.lines = map[K]*line[T]{}
	}
	l := s.lines[key]
	start := l == nil
	if start {
		l = &line[T]{}
		s.lines[key] = l
	}
	l.waiting = append(l.waiting, sub)
	s.mu.Unlock()
	if start {
		go s.flush(key, l)
	}
	select {
	case err := <-sub.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SendNow sends items to key at once, outside any group (a signal that carries something of its
// own), bounded by Timeout.
func (s *Signaller[K, T]) SendNow(key K, items ...T) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout())
	defer cancel()
	return s.Send(ctx, key, items)
}

// flush sends key's waiting submissions, batch after batch, until none is left.
func (s *Signaller[K, T]) flush(key K, l *line[T]) {
	for {
		s.mu.Lock()
		n := len(l.waiting)
		if s.MaxBatch > 0 {
			n = min(n, s.MaxBatch)
		}
		if n == 0 {
			delete(s.lines, key)
			s.mu.Unlock()
			return
		}
		batch := l.waiting[:n:n]
		l.waiting = l.waiting[n:]
		s.mu.Unlock()
		items := make([]T, len(batch))
		for i, sub := range batch {
			items[i] = sub.item
		}
		err := s.SendNow(key, items...)
		for _, sub := range batch {
			sub.done <- err
		}
	}
}

func (s *Signaller[K, T]) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return DefaultTimeout
}

// Waiting reports how many submissions to key wait for the next signal (tests and metrics).
func (s *Signaller[K, T]) Waiting(key K) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.lines[key]; l != nil {
		return len(l.waiting)
	}
	return 0
}
