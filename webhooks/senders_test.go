package webhooks

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/store"
)

func sendersStore(t *testing.T) (*store.Store, string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{SQLitePath: filepath.Join(t.TempDir(), "app.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	e := store.WebhookEndpoint{ID: store.NewID(), Name: "e", URL: "https://example.com", EventTypes: store.JSON(`["*"]`),
		Headers: store.JSON(`{}`), Enabled: true, RetryScheduleMS: store.JSON(`[]`), TimeoutMS: 1000, Secret: "s",
		CreatedAt: now, UpdatedAt: now}
	if err := st.CreateWebhookEndpoint(ctx, &e); err != nil {
		t.Fatal(err)
	}
	return st, e.ID
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A lease is held while renewed; wake-ups (direct or from a notification payload) reach the
// session holding the endpoint; a lease another process took over is lost at the next renewal;
// a released endpoint is free at once.
func TestSendersLeaseWakeAndLoss(t *testing.T) {
	st, id := sendersStore(t)
	ctx := context.Background()
	s := NewSenders(st, "p1", quietLog())
	l, err := s.Acquire(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Held() {
		t.Fatal("a fresh lease is not held")
	}
	s.WakePayload("other," + id)
	select {
	case <-l.Wakes():
	default:
		t.Error("a notification naming the endpoint did not wake its session")
	}
	s.renew(ctx)
	if !l.Held() {
		t.Fatal("a renewed lease is not held")
	}
	// Another process took the endpoint over (the lease had lapsed there, say).
	if err := st.UpdateWebhookEndpoint(ctx, id, map[string]any{"sender_id": "p2"}); err != nil {
		t.Fatal(err)
	}
	s.renew(ctx)
	select {
	case <-l.Lost():
	default:
		t.Fatal("a lease taken over was not reported lost")
	}
	if l.Held() {
		t.Error("a lost lease counts as held")
	}
	l.Release()
	if e, _ := st.GetWebhookEndpointAny(ctx, id); e.SenderID != "p2" {
		t.Errorf("releasing a lost lease let go of the new holder's: %q", e.SenderID)
	}

	// Released: another process takes it at once.
	if err := st.ReleaseWebhookSender(ctx, id, "p2"); err != nil {
		t.Fatal(err)
	}
	l, err = s.Acquire(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	other := NewSenders(st, "p3", quietLog())
	actx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if l3, err := other.Acquire(actx, id); err != nil {
		t.Fatalf("a released endpoint was not free: %v", err)
	} else {
		l3.Release()
	}
}

// Acquire waits while another process holds the endpoint and gives up when its context ends.
func TestSendersAcquireWaitsForTheHolder(t *testing.T) {
	st, id := sendersStore(t)
	ctx := context.Background()
	holder, err := NewSenders(st, "p1", quietLog()).Acquire(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	waiter := NewSenders(st, "p2", quietLog())
	actx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := waiter.Acquire(actx, id); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("took a held endpoint: %v", err)
	}
	got := make(chan error, 1)
	go func() {
		l, err := waiter.Acquire(ctx, id)
		if err == nil {
			l.Release()
		}
		got <- err
	}()
	time.Sleep(100 * time.Millisecond)
	holder.Release()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter did not get the endpoint once it was released")
	}
}
