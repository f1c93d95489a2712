package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestMeterFollowsARestartedProcess: a service process killed during the run and started again
// under a new id is metered by name: the run's CPU counts the new process's CPU and what the
// old one used after the baseline, never a negative difference.
func TestMeterFollowsARestartedProcess(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	// A copy of sh under its own name, so that no other process on the machine matches.
	bin := filepath.Join(t.TempDir(), "meterburn")
	b, err := os.ReadFile(sh)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	burn := func() *exec.Cmd {
		c := exec.Command(bin, "-c", "i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done; sleep 60")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
		return c
	}
	cpuOf := func(pid int) time.Duration {
		p, err := readProc(pid)
		if err != nil {
			t.Fatalf("read %d: %v", pid, err)
		}
		return p.CPU
	}
	waitCPU := func(pid int, atLeast time.Duration) {
		deadline := time.Now().Add(20 * time.Second)
		for cpuOf(pid) < atLeast {
			if time.Now().After(deadline) {
				t.Fatalf("process %d used no CPU", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	m := NewMeter(nil, []string{"meterburn"})
	old := burn()
	waitCPU(old.Process.Pid, 10*time.Millisecond)
	if u := m.Start(); u.N != 1 {
		t.Fatalf("baseline found %d processes, want 1", u.N)
	}
	m.Sample()
	_ = old.Process.Kill()
	_ = old.Wait()

	restarted := burn()
	waitCPU(restarted.Process.Pid, 50*time.Millisecond)
	atLeast := cpuOf(restarted.Process.Pid)
	u := m.Sample()
	if u.N != 1 {
		t.Errorf("%d processes alive, want the restarted one", u.N)
	}
	if u.CPU < atLeast {
		t.Errorf("run CPU %s, want at least the restarted process's %s", u.CPU, atLeast)
	}
	if ids := m.PIDs(); len(ids) != 1 || ids[0] != restarted.Process.Pid {
		t.Errorf("metered %v, want [%d]", ids, restarted.Process.Pid)
	}
}
