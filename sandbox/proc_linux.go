package sandbox

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// limitData lets the process's data segment (its heap and goroutine stacks: every private
// writable mapping) grow by at most n bytes past what it holds now (the binary's own data, the
// runtime's start), so that an allocation past it fails and the runtime dies at once.
func limitData(n uint64) error {
	used, err := dataSegment()
	if err != nil {
		return err
	}
	lim := used + n
	if err := syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: lim, Max: lim}); err != nil {
		return fmt.Errorf("RLIMIT_DATA: %w", err)
	}
	return nil
}

// dataSegment is the process's VmData.
func dataSegment() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmData:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmData %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmData in /proc/self/status")
}

// helperProcAttr makes a helper die with the process that started it.
func helperProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
