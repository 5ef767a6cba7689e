package auditlog

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

func line(t *testing.T, id string, at time.Time) string {
	t.Helper()
	b, err := json.Marshal(auditv1.Event{AuditID: types.UID(id), Stage: auditv1.StageResponseComplete, StageTimestamp: metav1.NewMicroTime(at)})
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// TestFollow reads a rotated file and the log, skips what is not after
// since, joins a line written in two parts, and follows a rotation.
func TestFollow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	appendTo(t, filepath.Join(dir, "audit-2026-11-30T11-00-00.000.log"), line(t, "old", t0.Add(-time.Hour))+line(t, "rotated", t0.Add(time.Second)))
	appendTo(t, path, line(t, "a", t0.Add(2*time.Second))+"not json\n")

	var mu sync.Mutex
	var got []string
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- Follow(ctx, path, t0, 5*time.Millisecond, func(ev *auditv1.Event) {
			mu.Lock()
			got = append(got, string(ev.AuditID))
			mu.Unlock()
		})
	}()
	wait := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			l := len(got)
			mu.Unlock()
			if l >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("got %v, want %d events", got, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wait(2)
	b := line(t, "b", t0.Add(3*time.Second))
	appendTo(t, path, b[:10])
	time.Sleep(30 * time.Millisecond)
	appendTo(t, path, b[10:])
	wait(3)
	// The API server's rotation: more lines in the old file, a rename,
	// and a new file.
	appendTo(t, path, line(t, "c", t0.Add(4*time.Second)))
	if err := os.Rename(path, filepath.Join(dir, "audit-2026-11-30T12-00-05.000.log")); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path, line(t, "d", t0.Add(5*time.Second)))
	wait(5)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if want := "[rotated a b c d]"; fmt.Sprint(got) != want {
		t.Fatalf("got %v, want %s", got, want)
	}
}
