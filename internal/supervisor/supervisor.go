// Package supervisor runs child processes of the slipway binary and keeps them
// running: a child that exits is started again after a backoff, and every
// child dies with its parent (Linux's parent-death signal), so that `kill -9`
// of Slipway leaves no orphaned API servers or etcds behind.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// Spec describes one supervised process.
type Spec struct {
	// Name identifies the process in logs and status, e.g. "kube-apiserver".
	Name string
	// Path is the executable; Args excludes the program name.
	Path string
	Args []string
	// Env is added to the parent's environment.
	Env []string
	// Output receives the child's stdout and stderr.
	Output io.Writer
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	StopTimeout time.Duration
}

// Backoff between restarts: doubled after each crash up to MaxBackoff, and
// reset once a process has stayed up for StableAfter.
const (
	InitialBackoff = 500 * time.Millisecond
	MaxBackoff     = 30 * time.Second
	StableAfter    = time.Minute
)

// State is what a supervised process is doing.
type State string

const (
	Starting   State = "Starting"
	Running    State = "Running"
	BackingOff State = "BackingOff"
	Stopped    State = "Stopped"
)

// Status is a snapshot of a supervised process.
type Status struct {
	Name     string
	State    State
	PID      int
	Restarts int
	// LastExit describes how the process last ended ("" if it never did).
	LastExit string
	// Since is when State last changed.
	Since time.Time
}

// Process is one supervised child. Its zero value is not usable; see Start.
type Process struct {
	spec Spec

	mu     sync.Mutex
	status Status
	cmd    *exec.Cmd

	stop chan struct{} // closed by Stop
	done chan struct{} // closed when the supervision loop has ended
}

// Start launches the process and supervises it until Stop is called. It
// returns once the first start has been attempted; a failure to even exec
// the binary is returned, later crashes are retried.
func Start(spec Spec) (*Process, error) {
	if spec.StopTimeout == 0 {
		spec.StopTimeout = 10 * time.Second
	}
	if spec.Output == nil {
		spec.Output = io.Discard
	}
	p := &Process{
		spec:   spec,
		status: Status{Name: spec.Name, State: Starting, Since: time.Now()},
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	firstStart := make(chan error, 1)
	go p.loop(firstStart)
	if err := <-firstStart; err != nil {
		<-p.done
		return nil, err
	}
	return p, nil
}

func (p *Process) loop(firstStart chan<- error) {
	defer close(p.done)
	// The parent-death signal fires when the *thread* that forked the child
	// exits, not the process (golang/go#27505). Pinning this goroutine to its
	// thread for as long as it supervises keeps that thread alive exactly as
	// long as the children it started.
	runtime.LockOSThread()

	backoff := InitialBackoff
	for attempt := 0; ; attempt++ {
		started := time.Now()
		cmd, startErr := p.startOnce()
		if attempt == 0 {
			firstStart <- startErr
			if startErr != nil {
				return
			}
		}
		var exitErr error
		if cmd != nil {
			exitErr = p.wait(cmd)
		}
		select {
		case <-p.stop:
			p.setState(Stopped, exitDescription(exitErr, startErr))
			return
		default:
		}
		if time.Since(started) > StableAfter {
			backoff = InitialBackoff
		}
		desc := exitDescription(exitErr, startErr)
		p.mu.Lock()
		p.status.Restarts++
		p.mu.Unlock()
		p.setState(BackingOff, desc)
		fmt.Fprintf(p.spec.Output, "supervisor: %s exited (%s), restarting in %s\n", p.spec.Name, desc, backoff)
		select {
		case <-p.stop:
			p.setState(Stopped, "")
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, MaxBackoff)
	}
}

// startOnce starts the child. It returns a nil command if Stop came first.
func (p *Process) startOnce() (*exec.Cmd, error) {
	cmd := exec.Command(p.spec.Path, p.spec.Args...)
	cmd.Env = append(os.Environ(), p.spec.Env...)
	cmd.Stdout = p.spec.Output
	cmd.Stderr = p.spec.Output
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Pdeathsig: syscall.SIGKILL,
		Setpgid:   true, // a terminal's Ctrl-C reaches Slipway, which stops children in order
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.stop:
		return nil, nil
	default:
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", p.spec.Name, err)
	}
	p.cmd = cmd
	p.status.PID = cmd.Process.Pid
	p.status.State = Running
	p.status.Since = time.Now()
	return cmd, nil
}

// wait waits for the child to exit and says how it ended.
func (p *Process) wait(cmd *exec.Cmd) error {
	err := cmd.Wait()
	p.mu.Lock()
	p.cmd = nil
	p.status.PID = 0
	p.mu.Unlock()
	if err == nil {
		err = errors.New("exited with status 0")
	}
	return err
}

func exitDescription(exitErr, startErr error) string {
	switch {
	case startErr != nil:
		return startErr.Error()
	case exitErr != nil:
		return exitErr.Error()
	}
	return ""
}

func (p *Process) setState(s State, lastExit string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status.State = s
	p.status.Since = time.Now()
	if lastExit != "" {
		p.status.LastExit = lastExit
	}
}

// Name is the spec's name.
func (p *Process) Name() string { return p.spec.Name }

// Status returns a snapshot of the process's state.
func (p *Process) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// Stop ends supervision: SIGTERM, then SIGKILL after the spec's StopTimeout
// or when ctx ends, whichever comes first. It returns when the child is gone.
func (p *Process) Stop(ctx context.Context) {
	p.mu.Lock()
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	cmd := p.cmd
	p.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	timer := time.NewTimer(p.spec.StopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return
	case <-timer.C:
	case <-ctx.Done():
	}
	p.mu.Lock()
	if p.cmd != nil {
		_ = p.cmd.Process.Kill()
	}
	p.mu.Unlock()
	<-p.done
}

// Done is closed when the process has stopped for good.
func (p *Process) Done() <-chan struct{} { return p.done }
