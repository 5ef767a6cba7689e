package version

import (
	"os"
	"regexp"
	"testing"
)

// TestMatchesGoMod keeps the constants honest: bumping k8s.io/kubernetes or
// the etcd server in go.mod without updating them fails here.
func TestMatchesGoMod(t *testing.T) {
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for module, want := range map[string]string{
		`k8s.io/kubernetes`:         Kubernetes,
		`go.etcd.io/etcd/server/v3`: Etcd,
	} {
		m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(module) + `\s+(v\S+)`).FindSubmatch(gomod)
		if m == nil {
			t.Errorf("go.mod does not require %s", module)
			continue
		}
		if got := string(m[1]); got != want {
			t.Errorf("go.mod has %s %s, the constant says %s", module, got, want)
		}
	}
	if got := KubernetesMinor(); got != "1.36" {
		t.Errorf("KubernetesMinor() = %q", got)
	}
}
