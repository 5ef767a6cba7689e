package hosting

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRotateLogs: a log past its limit is copied aside and truncated while
// its writer (a component holding it open for append) keeps writing, with
// no hole at the start of the new log; the oldest backup beyond the limit
// goes; small logs and the audit log are left alone.
func TestRotateLogs(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kube-apiserver.log")
	w, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	small := filepath.Join(dir, "kube-scheduler.log")
	audit := filepath.Join(dir, "audit.log")
	for _, f := range []string{small, audit} {
		if err := os.WriteFile(f, []byte(strings.Repeat("a", 200)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, gen := range []string{"first", "second", "third"} {
		if _, err := w.WriteString(strings.Repeat(gen+"\n", 50)); err != nil {
			t.Fatal(err)
		}
		if err := rotateLogs(dir, 250, 2); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.WriteString("after\n"); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read(path); got != "after\n" {
		t.Errorf("the log after rotation holds %q, want only what was written since", got)
	}
	if got := read(path + ".1"); got != strings.Repeat("third\n", 50) {
		t.Errorf(".1 holds %.40q…, want the third generation", got)
	}
	if got := read(path + ".2"); got != strings.Repeat("second\n", 50) {
		t.Errorf(".2 holds %.40q…, want the second generation", got)
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Error("a third backup was kept")
	}
	for _, f := range []string{small, audit} {
		if _, err := os.Stat(f + ".1"); err == nil || len(read(f)) != 200 {
			t.Errorf("%s was rotated", filepath.Base(f))
		}
	}
}
