package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// Back-off between checks while Temporal is not there yet: doubling from the first delay, never
// longer than the last.
const (
	temporalWaitFirst = time.Second
	temporalWaitMax   = 30 * time.Second
)

// errNamespaceMissing says the frontend answers but the namespace does not exist (or is being
// deleted).
var errNamespaceMissing = errors.New("namespace does not exist")

// checkNamespace asks the frontend for the namespace: nil when it answers and the namespace is
// registered.
func checkNamespace(ctx context.Context, c client.Client, namespace string) error {
	res, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace})
	var notFound *serviceerror.NamespaceNotFound
	switch {
	case errors.As(err, &notFound):
		return fmt.Errorf("%w: %s", errNamespaceMissing, namespace)
	case err != nil:
		return err
	case res.GetNamespaceInfo().GetState() != enumspb.NAMESPACE_STATE_REGISTERED:
		return fmt.Errorf("%w: %s is %s", errNamespaceMissing, namespace, res.GetNamespaceInfo().GetState())
	}
	return nil
}

// waitForTemporal blocks until the frontend answers and the namespace exists, so that an API or
// a worker started beside a cluster that is still coming up, or before the namespace is
// created, waits instead of crashing. It checks again after a back-off that doubles up to 30 s,
// logging each wait with what to do, and gives up after timeout (0: never) or when ctx ends.
func waitForTemporal(ctx context.Context, c client.Client, namespace, address string, timeout time.Duration, log *slog.Logger) error {
	start := time.Now()
	delay := temporalWaitFirst
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := checkNamespace(cctx, c, namespace)
		cancel()
		if err == nil {
			if attempt > 1 {
				log.Info("temporal namespace is there", "namespace", namespace, "waited", time.Since(start).Round(time.Millisecond))
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		waited, sleep := time.Since(start), delay
		if timeout > 0 && waited >= timeout {
			if errors.Is(err, errNamespaceMissing) {
				return fmt.Errorf("temporal namespace %q still does not exist after %s (TEMPORAL_WAIT_TIMEOUT); "+
					"create it with `temporal operator namespace create --namespace %s --address %s`", namespace,
					waited.Round(time.Second), namespace, address)
			}
			return fmt.Errorf("temporal at %s does not answer after %s (TEMPORAL_WAIT_TIMEOUT): %w", address,
				waited.Round(time.Second), err)
		}
		if timeout > 0 {
			sleep = min(sleep, timeout-waited) // a last check at the deadline
		}
		attrs := []any{"address", address, "namespace", namespace, "attempt", attempt, "retry_in", sleep.Round(time.Millisecond), "error", err}
		if errors.Is(err, errNamespaceMissing) {
			attrs = append(attrs, "fix", fmt.Sprintf("temporal operator namespace create --namespace %s --address %s "+
				"(or set TEMPORAL_NAMESPACE to an existing one)", namespace, address))
			log.Warn("waiting for the temporal namespace to be created", attrs...)
		} else {
			log.Warn("waiting for temporal to answer", attrs...)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(sleep):
		}
		delay = min(2*delay, temporalWaitMax)
	}
}
