package version

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Releases are the Kubernetes releases Slipway serves, oldest first: the
// one compiled into slipway (Kubernetes) and those the Makefile builds as
// bin/kube-<release> (KUBE_EXTRA). A minor may carry more than one patch,
// so that a cluster has a patch upgrade to take, as on AKS.
var Releases = []string{"1.35.4", "1.36.1", "1.36.3", "1.37.2"}

// Semver is a Kubernetes release, major.minor.patch.
type Semver struct{ Major, Minor, Patch int }

// Parse reads "1.36.3" (or "v1.36.3"). A "1.36" alias has Patch -1.
func Parse(s string) (Semver, error) {
	parts := strings.Split(strings.TrimPrefix(s, "v"), ".")
	if len(parts) < 2 || len(parts) > 3 {
		return Semver{}, fmt.Errorf("version %q is not major.minor or major.minor.patch", s)
	}
	v := Semver{Patch: -1}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || (len(p) > 1 && p[0] == '0') {
			return Semver{}, fmt.Errorf("version %q is not major.minor or major.minor.patch", s)
		}
		*[]*int{&v.Major, &v.Minor, &v.Patch}[i] = n
	}
	return v, nil
}

// MustParse is Parse of a version known to be well formed.
func MustParse(s string) Semver {
	v, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return v
}

func (v Semver) String() string {
	if v.Patch < 0 {
		return fmt.Sprintf("%d.%d", v.Major, v.Minor)
	}
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
}

// MinorString is "major.minor".
func (v Semver) MinorString() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Compare orders releases; an alias sorts before its minor's patches.
func (v Semver) Compare(w Semver) int {
	if c := v.Major - w.Major; c != 0 {
		return c
	}
	if c := v.Minor - w.Minor; c != 0 {
		return c
	}
	return v.Patch - w.Patch
}

// Minors are the minors of Releases, oldest first.
func Minors() []string {
	var out []string
	for _, r := range Releases {
		if m := MustParse(r).MinorString(); !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// Patches are the releases of one minor ("1.36"), oldest first.
func Patches(minor string) []string {
	var out []string
	for _, r := range Releases {
		if MustParse(r).MinorString() == minor {
			out = append(out, r)
		}
	}
	return out
}

// Default is the release a cluster gets when its PUT names none. AKS's
// rule: the latest patch of the newest generally available minor but one.
func Default() string {
	minors := Minors()
	minor := minors[max(0, len(minors)-2)]
	p := Patches(minor)
	return p[len(p)-1]
}

// DefaultMinor is Default's minor.
func DefaultMinor() string { return MustParse(Default()).MinorString() }

// Resolve turns what a PUT asks for into the release it runs: a release
// Slipway serves as given, or a minor alias ("1.36") as its latest patch,
// as AKS resolves aliases. ok is false for anything else.
func Resolve(v string) (release string, ok bool) {
	want, err := Parse(v)
	if err != nil {
		return "", false
	}
	if want.Patch < 0 {
		p := Patches(want.MinorString())
		if len(p) == 0 {
			return "", false
		}
		return p[len(p)-1], true
	}
	if slices.Contains(Releases, want.String()) {
		return want.String(), true
	}
	return "", false
}

// Compiled reports whether release runs from the servers compiled into
// slipway itself rather than a bin/kube-<release> beside it.
func Compiled(release string) bool { return release == strings.TrimPrefix(Kubernetes, "v") }

// Upgrades are the releases a cluster or pool on release may move to next:
// later patches of its minor and every patch of the next minor (minors
// cannot be skipped), oldest first.
func Upgrades(release string) []string {
	from, err := Parse(release)
	if err != nil {
		return nil
	}
	var out []string
	for _, r := range Releases {
		to := MustParse(r)
		if to.Major == from.Major && to.Compare(from) > 0 && to.Minor <= from.Minor+1 {
			out = append(out, r)
		}
	}
	return out
}

// BinaryName is the file, beside slipway, that runs release's servers
// when release is not the compiled one.
func BinaryName(release string) string { return "kube-" + release }

// ChannelTarget is where AKS's cluster auto-upgrade channel takes a
// cluster on release: "patch" to its minor's latest patch; "stable" toward
// the latest patch of the newest minor but one, and "rapid" of the newest
// minor, one minor at a time, and to the latest patch of the minor it is on
// once it is at (or, for stable, past) that minor. Other channels ("none",
// "node-image") leave the version alone: ok is false.
func ChannelTarget(channel, release string) (target string, ok bool) {
	from, err := Parse(release)
	if err != nil {
		return "", false
	}
	var goal Semver
	switch channel {
	case "patch":
		goal = from
	case "stable":
		goal = MustParse(DefaultMinor())
	case "rapid":
		minors := Minors()
		goal = MustParse(minors[len(minors)-1])
	default:
		return "", false
	}
	minor := from.MinorString()
	if from.Major == goal.Major && from.Minor < goal.Minor {
		minor = fmt.Sprintf("%d.%d", from.Major, from.Minor+1)
	}
	if latest, ok := Resolve(minor); ok {
		return latest, true
	}
	return release, true
}
