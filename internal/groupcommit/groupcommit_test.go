package groupcommit_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/pyairtable/automation-domain/internal/groupcommit"
)

// recorder is a Send that records each batch and, while gate is set, holds the first call until
// released.
type recorder struct {
	mu      sync.Mutex
	batches map[string][][]int
	entered chan struct{}
	release chan struct{}
	err     error
}

func newRecorder() *recorder {
	return &recorder{batches: map[string][][]int{}, entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (r *recorder) send(_ context.Context, key string, items []int) error {
	r.entered <- struct{}{}
	<-r.release
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches[key] = append(r.batches[key], slices.Clone(items))
	return r.err
}

// Submissions that arrive while a signal is in flight share the next one, in order, split at
// MaxBatch; every caller returns once the signal that carried its item returned.
func TestSubmissionsShareTheNextSignal(t *testing.T) {
	r := newRecorder()
	s := &groupcommit.Signaller[string, int]{Send: r.send, MaxBatch: 3}
	first := make(chan error, 1)
	go func() { first <- s.Submit(context.Background(), "a", 0) }()
	<-r.entered // the first signal is in flight

	var wg sync.WaitGroup
	errs := make([]error, 5)
	queued := make(chan struct{}, 5)
	for i := 1; i <= 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			queued <- struct{}{}
			errs[i-1] = s.Submit(context.Background(), "a", i)
		}()
		<-queued // submitted in order (Submit appends before it waits)
		waitQueued(t, s, i)
	}
	close(r.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := [][]int{{0}, {1, 2, 3}, {4, 5}}
	if got := r.batches["a"]; !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("batches %v, want %v", got, want)
	}
}

// waitQueued waits until n submissions after the first are queued behind the signal in flight.
func waitQueued(t *testing.T, s *groupcommit.Signaller[string, int], n int) {
	t.Helper()
	for s.Waiting("a") < n {
		// Submit appends under the signaller's lock right after it is called: yield until then.
		runtime.Gosched()
	}
}

// A failed signal fails every caller whose item it carried; a caller whose context ends stops
// waiting while the signal goes on.
func TestErrorsReachEveryCallerOfTheBatch(t *testing.T) {
	r := newRecorder()
	r.err = errors.New("temporal unreachable")
	close(r.release)
	s := &groupcommit.Signaller[string, int]{Send: r.send}
	if err := s.Submit(context.Background(), "b", 1); !errors.Is(err, r.err) {
		t.Fatalf("submit: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Submit(ctx, "b", 2); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, r.err) {
		t.Fatalf("cancelled submit: %v", err)
	}
}
