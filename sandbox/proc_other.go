//go:build !linux

package sandbox

import (
	"syscall"
	"time"
)

// limitData is a no-op outside Linux: the helper's memory limit is then only the soft limit
// of the Go runtime (GOMEMLIMIT), and the in-engine budget.
func limitData(uint64) error { return nil }

// helperProcAttr: without Linux's parent-death signal a helper ends when its stdin closes.
func helperProcAttr() *syscall.SysProcAttr { return nil }

// processCPU is unknown outside Linux for a live process.
func processCPU(int) time.Duration { return 0 }
