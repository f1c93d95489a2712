package sandbox

import (
	"fmt"
	"syscall"
)

// limitData caps the process's data segment (heap and goroutine stacks: every private
// writable mapping), so that an allocation past it fails and the runtime dies at once.
func limitData(n uint64) error {
	if err := syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
		return fmt.Errorf("RLIMIT_DATA: %w", err)
	}
	return nil
}

// helperProcAttr makes a helper die with the process that started it.
func helperProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
