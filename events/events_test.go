package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/events"
	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/store"
)

type recorder struct {
	mu   sync.Mutex
	got  []string
	fail bool
	// hold, when set, keeps Deliver waiting until it is closed.
	hold chan struct{}
}

func (r *recorder) Name() string { return "recorder" }

func (r *recorder) Deliver(_ context.Context, e store.Event) error {
	if r.hold != nil {
		<-r.hold
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return errors.New("temporal is down")
	}
	r.got = append(r.got, e.ID)
	return nil
}

func (r *recorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func forEachDialect(t *testing.T, fn func(t *testing.T, st *store.Store)) {
	open := func(t *testing.T, o store.Options) *store.Store {
		st, err := store.Open(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, err := st.Migrate(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		return st
	}
	t.Run("sqlite", func(t *testing.T) { fn(t, open(t, store.Options{SQLitePath: filepath.Join(t.TempDir(), "a.db")})) })
	t.Run("postgres", func(t *testing.T) { fn(t, open(t, store.Options{URL: testenv.PostgresURL(t)})) })
}

func TestPublishStoresThenDelivers(t *testing.T) {
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		rec := &recorder{}
		bus := events.NewBus(st, slog.Default())
		bus.Subscribe(rec)
		e, dup, err := bus.Publish(ctx, store.Event{Type: "user.created", Source: "test", Data: store.JSON(`{"a":1}`)})
		if err != nil || dup {
			t.Fatalf("publish: %v dup=%v", err, dup)
		}
		if e.ID == "" || e.CorrelationID != e.ID || e.ReceivedAt.IsZero() {
			t.Errorf("defaults not filled: %+v", e)
		}
		stored, err := st.GetEvent(ctx, e.ID)
		var data map[string]int
		if err != nil || stored.DispatchedAt == nil || json.Unmarshal(stored.Data, &data) != nil || data["a"] != 1 {
			t.Fatalf("stored %+v %v", stored, err)
		}
		// The same id again: accepted once.
		_, dup, err = bus.Publish(ctx, store.Event{ID: e.ID, Type: "user.created"})
		if err != nil || !dup {
			t.Fatalf("second publish: %v dup=%v", err, dup)
		}
		if got := rec.ids(); len(got) != 1 {
			t.Errorf("delivered %d times, want 1", len(got))
		}
	})
}

// immediateRecorder is a subscriber that only writes to the database.
type immediateRecorder struct{ recorder }

func (*immediateRecorder) Immediate() bool { return true }

// Accept returns once the event is stored and handed to the Immediate subscribers, without
// waiting for the others (they may be stuck on Temporal); their hand-off goes on in the
// background and Wait waits for it.
func TestAcceptDoesNotWaitForTheHandOff(t *testing.T) {
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		rec := &recorder{hold: make(chan struct{})}
		imm := &immediateRecorder{}
		bus := events.NewBus(st, slog.Default())
		bus.Subscribe(rec)
		bus.Subscribe(imm)
		e, dup, err := bus.Accept(ctx, store.Event{Type: "user.created"})
		if err != nil || dup {
			t.Fatalf("accept: %v dup=%v", err, dup)
		}
		if got := imm.ids(); len(got) != 1 || got[0] != e.ID {
			t.Errorf("the immediate subscriber got %v before Accept returned, want the event", got)
		}
		stored, err := st.GetEvent(ctx, e.ID)
		if err != nil || stored.DispatchedAt != nil {
			t.Fatalf("stored %+v %v: want stored and not handed off yet", stored, err)
		}
		close(rec.hold)
		bus.Wait(ctx)
		if stored, _ := st.GetEvent(ctx, e.ID); stored.DispatchedAt == nil || len(rec.ids()) != 1 {
			t.Errorf("after Wait: dispatched at %v, delivered %d times", stored.DispatchedAt, len(rec.ids()))
		}
	})
}

func TestFailedHandOffIsRedispatched(t *testing.T) {
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		rec := &recorder{fail: true}
		bus := events.NewBus(st, slog.Default())
		bus.Subscribe(rec)
		e, _, err := bus.Publish(ctx, store.Event{Type: "x"})
		if err != nil {
			t.Fatalf("a failed hand-off must not fail the publish of a stored event: %v", err)
		}
		if n, _ := bus.Redispatch(ctx, 0, 10); n != 0 {
			t.Fatalf("redispatched %d while the subscriber still fails", n)
		}
		rec.mu.Lock()
		rec.fail = false
		rec.mu.Unlock()
		// Within the grace period it is left alone (a Publish may still be handing it off).
		if n, _ := bus.Redispatch(ctx, time.Hour, 10); n != 0 {
			t.Fatalf("redispatched inside the grace period")
		}
		if n, err := bus.Redispatch(ctx, 0, 10); n != 1 || err != nil {
			t.Fatalf("redispatch: %d %v", n, err)
		}
		if got := rec.ids(); len(got) != 1 || got[0] != e.ID {
			t.Errorf("delivered %v", got)
		}
		if n, _ := bus.Redispatch(ctx, 0, 10); n != 0 {
			t.Errorf("dispatched twice")
		}
	})
}

func TestCausedContinuesTheChain(t *testing.T) {
	root := store.Event{ID: "a", CorrelationID: "a", Depth: 0}
	child := events.Caused(root, "b.happened", "rules", nil)
	grandchild := events.Caused(store.Event{ID: "b", CorrelationID: child.CorrelationID, Depth: child.Depth}, "c", "rules", nil)
	if child.CausationID != "a" || child.Depth != 1 || grandchild.CorrelationID != "a" || grandchild.Depth != 2 {
		t.Errorf("child %+v grandchild %+v", child, grandchild)
	}
}
