package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/internal/testenv"
)

// readmeBlock is a shell block of README.md marked for testing:
//
//	<!-- readme-test expect: marker | other marker -->
//	```bash
//	…
//	```
type readmeBlock struct {
	line   int      // of the opening fence
	expect []string // substrings its output must contain
	script string
}

// readmeBlocks returns the README's marked blocks, in order.
func readmeBlocks(t *testing.T, path string) []readmeBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		blocks  []readmeBlock
		cur     *readmeBlock
		marked  *readmeBlock
		body    strings.Builder
		lineNum int
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lineNum++
		line := sc.Text()
		switch {
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.script = body.String()
			blocks = append(blocks, *cur)
			cur, marked = nil, nil
			body.Reset()
		case cur != nil:
			body.WriteString(line + "\n")
		case strings.HasPrefix(line, "<!-- readme-test"):
			spec := strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(line, "<!-- readme-test")), "-->")
			marked = &readmeBlock{}
			if rest, ok := strings.CutPrefix(strings.TrimSpace(spec), "expect:"); ok {
				for _, m := range strings.Split(rest, " | ") {
					if m = strings.TrimSpace(m); m != "" {
						marked.expect = append(marked.expect, m)
					}
				}
			}
		case marked != nil && (line == "```bash" || line == "```sh"):
			cur = marked
			cur.line = lineNum
		case marked != nil && strings.TrimSpace(line) != "":
			t.Fatalf("README.md:%d: a readme-test mark must be followed by a ```bash block, got %q", lineNum, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("README.md:%d: unterminated block", cur.line)
	}
	return blocks
}

// TestReadmeBlocks runs the README's marked shell blocks, in order and in one shell (so that
// $KEY, $ID … carry over, as in a reader's terminal), against a fresh embedded stack, and checks
// that each exits 0 and prints its markers. The text runs as written but for three things a
// test must change: localhost:8090 is the stack's address, the receivers' ports 9999 and 9998
// are free ones, and `go run ./starter` runs the starter binary built from the same tree (the
// same code, without a link per command). The working directory is a scratch directory whose
// data/ is the stack's DATA_DIR, so data/dev-secrets.json is where the README says.
func TestReadmeBlocks(t *testing.T) {
	blocks := readmeBlocks(t, "../README.md")
	if len(blocks) < 4 {
		t.Fatalf("README.md has %d blocks marked <!-- readme-test -->; the quick start, workflow, rules and webhook examples should be", len(blocks))
	}
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("REQUIRE_SERVICES") != "" {
				t.Fatalf("%s is needed to run the README's examples", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
	starter := binary(t, "starter")
	dataDir := t.TempDir()
	s := startEmbedded(t, testConfig(t, dataDir, map[string]string{"WEBHOOK_ALLOWED_CIDRS": "127.0.0.0/8"}))
	work := t.TempDir()
	if err := os.Symlink(dataDir, filepath.Join(work, "data")); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(s.URL, "http://")
	ports := strings.NewReplacer("9999", fmt.Sprint(testenv.FreePort(t)), "9998", fmt.Sprint(testenv.FreePort(t)))

	var script strings.Builder
	script.WriteString("set -eo pipefail\n")
	script.WriteString(`go() { if [ "$1" = run ] && [ "$2" = ./starter ]; then shift 2; starter "$@"; else command go "$@"; fi; }` + "\n")
	for i, b := range blocks {
		text := ports.Replace(strings.ReplaceAll(b.script, "localhost:8090", host))
		fmt.Fprintf(&script, "echo '::readme-block %d::'\n%s", i, text)
	}
	script.WriteString("echo '::readme-end::'\n")

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = work
	cmd.Env = []string{"PATH=" + filepath.Dir(starter) + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"), "AUTOMATION_API_URL=" + s.URL}
	// Its own process group: the receivers a block starts in the background end with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second // a receiver left running holds the output open
	out, err := os.Create(filepath.Join(work, "output"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Start()
	if err == nil {
		pgid := cmd.Process.Pid
		t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) }) // receivers still running
		err = cmd.Wait()
	}
	b, _ := os.ReadFile(filepath.Join(work, "output"))
	text := string(b)
	t.Logf("README blocks' output:\n%s", text)
	sections := map[int]string{}
	last := -1
	for _, line := range strings.SplitAfter(text, "\n") {
		var n int
		if _, e := fmt.Sscanf(line, "::readme-block %d::", &n); e == nil {
			last = n
			continue
		}
		if last >= 0 {
			sections[last] += line
		}
	}
	if err != nil || !strings.Contains(text, "::readme-end::") {
		t.Fatalf("the README's blocks failed (%v) in block %d (README.md:%d)", err, last, blocks[max(last, 0)].line)
	}
	for i, b := range blocks {
		for _, m := range b.expect {
			if !strings.Contains(sections[i], m) {
				t.Errorf("README.md:%d: the block's output lacks %q", b.line, m)
			}
		}
	}
}
