package version

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	for in, want := range map[string]string{
		"1.36": "1.36.3", "1.36.1": "1.36.1", "v1.35.4": "1.35.4", "1.37": "1.37.2",
		"1.36.2": "", "1.34": "", "1.38.0": "", "1": "", "1.36.x": "", "01.36": "", "": "",
	} {
		got, ok := Resolve(in)
		if got != want || ok != (want != "") {
			t.Errorf("Resolve(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestDefaultIsTheNewestMinorButOne(t *testing.T) {
	if got := Default(); got != "1.36.3" {
		t.Errorf("Default() = %s, want 1.36.3 (the latest patch of 1.36, the newest minor 1.37 but one)", got)
	}
	// The default is the compiled-in release: a newcomer's cluster needs
	// no other binary.
	if !Compiled(Default()) {
		t.Errorf("the default %s is not the compiled-in %s", Default(), Kubernetes)
	}
}

func TestUpgradesSkipNoMinor(t *testing.T) {
	for from, want := range map[string][]string{
		"1.35.4": {"1.36.1", "1.36.3"},
		"1.36.1": {"1.36.3", "1.37.2"},
		"1.36.3": {"1.37.2"},
		"1.37.2": nil,
	} {
		if got := Upgrades(from); !slices.Equal(got, want) {
			t.Errorf("Upgrades(%s) = %v, want %v", from, got, want)
		}
	}
}

// TestReleasesMatchTheBuild keeps the list honest: every release but the
// compiled-in one must be a KUBE_EXTRA of the Makefile, with a module file
// in kube/ that requires it.
func TestReleasesMatchTheBuild(t *testing.T) {
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^KUBE_EXTRA\s*:=\s*(.*)$`).FindSubmatch(makefile)
	if m == nil {
		t.Fatal("the Makefile sets no KUBE_EXTRA")
	}
	extra := strings.Fields(string(m[1]))
	var want []string
	for _, r := range Releases {
		if !Compiled(r) {
			want = append(want, r)
		}
	}
	if !slices.Equal(extra, want) {
		t.Errorf("Makefile KUBE_EXTRA = %v, the releases beside the compiled-in one are %v", extra, want)
	}
	newest := regexp.MustCompile(`(?m)^KUBE_NEWEST\s*:=\s*(\S+)`).FindSubmatch(makefile)
	for _, r := range extra {
		file := "../../kube/go." + r + ".mod"
		if newest != nil && string(newest[1]) == r {
			file = "../../kube/go.mod"
		}
		mod, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("release %s: %v", r, err)
			continue
		}
		if !regexp.MustCompile(`(?m)^\s*(require\s+)?k8s\.io/kubernetes v` + regexp.QuoteMeta(r) + `$`).Match(mod) {
			t.Errorf("%s does not require k8s.io/kubernetes v%s", file, r)
		}
	}
}

// TestChannelTarget: AKS's auto-upgrade channels over 1.35.4, 1.36.1,
// 1.36.3 and 1.37.2 (stable is 1.36, rapid 1.37).
func TestChannelTarget(t *testing.T) {
	for _, c := range []struct{ channel, from, want string }{
		{"patch", "1.36.1", "1.36.3"},
		{"patch", "1.35.4", "1.35.4"},
		{"stable", "1.35.4", "1.36.3"},
		{"stable", "1.36.1", "1.36.3"},
		{"stable", "1.37.2", "1.37.2"}, // past stable: no downgrade
		{"rapid", "1.35.4", "1.36.3"},  // one minor at a time
		{"rapid", "1.36.3", "1.37.2"},
		{"none", "1.35.4", ""},
		{"node-image", "1.35.4", ""},
	} {
		got, ok := ChannelTarget(c.channel, c.from)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("%s from %s: %q %v, want %q", c.channel, c.from, got, ok, c.want)
		}
	}
}
