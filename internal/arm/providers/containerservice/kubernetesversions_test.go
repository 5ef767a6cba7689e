package containerservice

import (
	"errors"
	"testing"

	"github.com/slipway-dev/slipway/internal/arm"
)

// TestVersionRules: AKS's rules for control plane and pool versions, with
// its codes. The releases are 1.35.4, 1.36.1, 1.36.3 and 1.37.2.
func TestVersionRules(t *testing.T) {
	code := func(err error) string {
		var e *arm.Error
		if errors.As(err, &e) {
			return e.Code
		}
		if err != nil {
			return err.Error()
		}
		return ""
	}
	for _, c := range []struct{ from, to, want string }{
		{"1.35.4", "1.35.4", ""},
		{"1.35.4", "1.36.1", ""},
		{"1.36.1", "1.36.3", ""}, // a patch upgrade
		{"1.35.4", "1.37.2", "OperationNotAllowed"},
		{"1.36.3", "1.35.4", "OperationNotAllowed"},
		{"1.36.3", "1.36.1", "OperationNotAllowed"},
	} {
		if got := code(checkControlPlaneUpgrade(c.from, c.to)); got != c.want {
			t.Errorf("control plane %s -> %s: %q, want %q", c.from, c.to, got, c.want)
		}
	}
	for _, c := range []struct{ from, to, cp, want string }{
		{"1.35.4", "1.36.3", "1.36.3", ""},
		{"", "1.35.4", "1.37.2", ""}, // a new pool two minors behind
		{"1.35.4", "1.37.2", "1.37.2", "AgentPoolUpgradeVersionNotAllowed"},
		{"1.36.3", "1.36.1", "1.36.3", "AgentPoolUpgradeVersionNotAllowed"},
		{"1.35.4", "1.36.1", "1.35.4", "NodePoolMcVersionIncompatible"}, // past its control plane's minor
		{"1.36.1", "1.36.3", "1.36.1", "NodePoolMcVersionIncompatible"}, // past its control plane's patch
	} {
		if got := code(checkPoolVersion(c.from, c.to, c.cp)); got != c.want {
			t.Errorf("pool %s -> %s under %s: %q, want %q", c.from, c.to, c.cp, got, c.want)
		}
	}
}
