package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sample gathers durations from many goroutines and summarises them.
type Sample struct {
	mu sync.Mutex
	ds []time.Duration
}

// Add records one duration.
func (s *Sample) Add(d time.Duration) {
	s.mu.Lock()
	s.ds = append(s.ds, d)
	s.mu.Unlock()
}

// Summary is the count and percentiles of a sample.
type Summary struct {
	N             int
	P50, P90, P99 time.Duration
	Max           time.Duration
}

// Summary sorts a copy of the sample and reads its percentiles (nearest rank).
func (s *Sample) Summary() Summary {
	s.mu.Lock()
	ds := slices.Clone(s.ds)
	s.mu.Unlock()
	return summarize(ds)
}

func summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	slices.Sort(ds)
	return Summary{N: len(ds), P50: percentile(ds, 50), P90: percentile(ds, 90), P99: percentile(ds, 99), Max: ds[len(ds)-1]}
}

// percentile is the nearest-rank percentile p (0 < p ≤ 100) of sorted ds: the smallest value
// with at least p% of the sample at or below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted)) + 0.999999999)
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func (s Summary) String() string {
	if s.N == 0 {
		return "no samples"
	}
	return fmt.Sprintf("n=%d p50 %s  p90 %s  p99 %s  max %s", s.N, ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// parsePIDs reads a comma-separated list of process ids.
func parsePIDs(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-pids: %q is not a process id", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// ProcStat is what /proc says of one process at one moment.
type ProcStat struct {
	PID      int
	Comm     string
	CPU      time.Duration // user + system time
	RSSBytes int64
	// AnonBytes is the anonymous part of the RSS (RssAnon): the process's own memory, without
	// the clean pages mapped from its executable, which the kernel shares and may reclaim.
	AnonBytes int64
}

// parseStat reads utime and stime from the text of /proc/<pid>/stat. The command name (field 2)
// is in parentheses and may hold spaces and parentheses, so fields are counted after its last ')'.
func parseStat(text string) (comm string, cpu time.Duration, err error) {
	open, closing := strings.IndexByte(text, '('), strings.LastIndexByte(text, ')')
	if open < 0 || closing < open {
		return "", 0, fmt.Errorf("malformed stat %q", text)
	}
	comm = text[open+1 : closing]
	fields := strings.Fields(text[closing+1:])
	// fields[0] is field 3 (state); utime is field 14, stime field 15.
	if len(fields) < 13 {
		return "", 0, fmt.Errorf("stat has %d fields after the name", len(fields))
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, fmt.Errorf("malformed utime/stime in %q", text)
	}
	return comm, time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// parseRSS reads VmRSS (kB) from the text of /proc/<pid>/status.
func parseRSS(text string) (int64, error) { return statusBytes(text, "VmRSS") }

// statusBytes reads a "Field:  123 kB" line of /proc/<pid>/status as bytes.
func statusBytes(text, field string) (int64, error) {
	for line := range strings.SplitSeq(text, "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("malformed %s %q", field, line)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no %s", field)
}

func readProc(pid int) (ProcStat, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcStat{}, err
	}
	comm, cpu, err := parseStat(string(stat))
	if err != nil {
		return ProcStat{}, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcStat{}, err
	}
	rss, err := parseRSS(string(status))
	if err != nil {
		return ProcStat{}, err
	}
	anon, _ := statusBytes(string(status), "RssAnon") // absent before Linux 4.5
	return ProcStat{PID: pid, Comm: comm, CPU: cpu, RSSBytes: rss, AnonBytes: anon}, nil
}

// findProcs returns the processes whose command name (/proc/<pid>/comm) is one of names.
func findProcs(names []string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			continue
		}
		if slices.Contains(names, strings.TrimSpace(string(comm))) {
			out = append(out, pid)
		}
	}
	return out
}

// Usage is the summed CPU time and RSS of a set of processes.
type Usage struct {
	CPU  time.Duration
	RSS  int64
	Anon int64 // anonymous part of RSS
	N    int
}

func readUsage(pids []int) Usage {
	var u Usage
	for _, pid := range pids {
		p, err := readProc(pid)
		if err != nil {
			continue
		}
		u.CPU += p.CPU
		u.RSS += p.RSSBytes
		u.Anon += p.AnonBytes
		u.N++
	}
	return u
}

func mb(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/(1<<20)) }

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// Meter follows the service's processes through a measured run. Without fixed ids it finds
// them by name on every sample, so that a process restarted during the run (a kill -9 test)
// counts from its own start, and the one it replaced up to its last sample: the CPU of a run
// is then every process's, not a negative difference of the survivors'.
type Meter struct {
	mu    sync.Mutex
	names []string
	fixed []int
	base  map[int]time.Duration // CPU at Start of the processes alive then
	last  map[int]time.Duration // CPU at the latest sample of every process seen since Start
}

// NewMeter meters the processes with these ids, or when there are none those named names.
func NewMeter(pids []int, names []string) *Meter {
	return &Meter{fixed: pids, names: names}
}

// PIDs are the processes metered now.
func (m *Meter) PIDs() []int {
	if len(m.fixed) > 0 {
		return m.fixed
	}
	return findProcs(m.names)
}

// Start takes the baseline: CPU is counted from here. It returns the processes' usage with CPU 0.
func (m *Meter) Start() Usage {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.base, m.last = map[int]time.Duration{}, map[int]time.Duration{}
	var u Usage
	for _, pid := range m.PIDs() {
		p, err := readProc(pid)
		if err != nil {
			continue
		}
		m.base[pid], m.last[pid] = p.CPU, p.CPU
		u.RSS += p.RSSBytes
		u.Anon += p.AnonBytes
		u.N++
	}
	return u
}

// Sample reads the processes alive now (their RSS and number) and the CPU used since Start by
// every process seen since: a process that appeared later counts all of its CPU, one that
// ended counts up to the last sample that saw it.
func (m *Meter) Sample() Usage {
	m.mu.Lock()
	defer m.mu.Unlock()
	var u Usage
	for _, pid := range m.PIDs() {
		p, err := readProc(pid)
		if err != nil {
			continue
		}
		if m.last != nil {
			m.last[pid] = p.CPU
		}
		u.RSS += p.RSSBytes
		u.Anon += p.AnonBytes
		u.N++
	}
	for pid, cpu := range m.last {
		u.CPU += cpu - m.base[pid]
	}
	return u
}
