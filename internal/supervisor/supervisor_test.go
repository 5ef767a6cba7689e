package supervisor

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a parent process for TestChildDiesWithParent.
func TestMain(m *testing.M) {
	if os.Getenv("SUPERVISOR_TEST_PARENT") == "1" {
		p, err := Start(Spec{Name: "sleeper", Path: "sleep", Args: []string{"1000"}})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(p.Status().PID)
		select {}
	}
	os.Exit(m.Run())
}

func TestRestartsWithBackoff(t *testing.T) {
	t.Parallel()
	p, err := Start(Spec{Name: "crasher", Path: "/bin/sh", Args: []string{"-c", "exit 3"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	// Record when each crash is seen: the gaps are the backoffs, 0.5 s
	// then 1 s, so the second gap is about twice the first.
	var seen [4]time.Time
	deadline := time.Now().Add(10 * time.Second)
	for n := p.Status().Restarts; n < 3; n = p.Status().Restarts {
		if time.Now().After(deadline) {
			t.Fatalf("restarts = %d after 10s", n)
		}
		if seen[n].IsZero() {
			seen[n] = time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
	seen[3] = time.Now()
	if s := p.Status(); !strings.Contains(s.LastExit, "exit status 3") {
		t.Errorf("LastExit = %q", s.LastExit)
	}
	first, second := seen[2].Sub(seen[1]), seen[3].Sub(seen[2])
	if first < InitialBackoff-50*time.Millisecond || second < 2*InitialBackoff-50*time.Millisecond {
		t.Errorf("gaps between restarts %s, %s: want about %s and %s", first, second, InitialBackoff, 2*InitialBackoff)
	}
}

func TestStop(t *testing.T) {
	t.Parallel()
	p, err := Start(Spec{Name: "sleeper", Path: "sleep", Args: []string{"1000"}})
	if err != nil {
		t.Fatal(err)
	}
	pid := p.Status().PID
	if pid == 0 || p.Status().State != Running {
		t.Fatalf("status after start: %+v", p.Status())
	}
	start := time.Now()
	p.Stop(context.Background())
	if time.Since(start) > 5*time.Second {
		t.Errorf("Stop took %s", time.Since(start))
	}
	if s := p.Status(); s.State != Stopped || s.Restarts != 0 {
		t.Errorf("status after stop: %+v", s)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("process %d still alive after Stop", pid)
	}
}

func TestStartFailure(t *testing.T) {
	t.Parallel()
	if _, err := Start(Spec{Name: "missing", Path: "/nonexistent/binary"}); err == nil {
		t.Fatal("starting a missing binary succeeded")
	}
}

// TestChildDiesWithParent kills a supervising process with SIGKILL, as
// `kill -9 slipway` would, and checks that its child goes too.
func TestChildDiesWithParent(t *testing.T) {
	t.Parallel()
	parent := exec.Command(os.Args[0], "-test.run=^$")
	parent.Env = append(os.Environ(), "SUPERVISOR_TEST_PARENT=1")
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	childPID, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("parent said %q", line)
	}
	if err := syscall.Kill(childPID, 0); err != nil {
		t.Fatalf("child %d not running: %v", childPID, err)
	}
	parent.Process.Kill()
	parent.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(childPID, 0) == nil {
		// A dead child that nobody reaped is a zombie: gone for our purpose.
		if state, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", childPID)); strings.Contains(string(state), ") Z") {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(childPID, syscall.SIGKILL)
			t.Fatalf("child %d outlived its parent", childPID)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
