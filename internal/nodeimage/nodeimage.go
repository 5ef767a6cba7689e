// Package nodeimage is the catalog of node OS images: the weekly releases of
// each image family (one per OS SKU) in AKS's version format, the history
// Slipway ships with, and the parsing and ordering of image names.
//
// A node image is named <family>-<YYYYMM>.<DD>.<rev>, for example
// AKSUbuntu-2204gen2containerd-202511.14.0. Nodes on the SecurityPatch
// channel carry the base image they were built from plus the date of the
// security patches applied to it: AKSUbuntu-2204gen2containerd-202511.14.0-2025.11.20.
//
// Windows images are named as AKS names them, <family>-<build>.<update>.<YYMMDD>
// (AKSWindows-2022-containerd-20348.4405.251114): the Windows Server build,
// the monthly cumulative update, the release date. They come out monthly
// and have no security patch channel of their own.
package nodeimage

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Family is a line of node images for one OS SKU.
type Family struct {
	// Prefix starts every image name of the family.
	Prefix string
	// OSImage is what nodes report as their OS image.
	OSImage string
	// linuxKernel gives the kernel of a Linux family's n-th release.
	linuxKernel func(n int) string
	// Build is the Windows Server build of a Windows family, 0 for Linux.
	Build int
	// firstUpdate is a Windows family's cumulative update in its first
	// shipped release.
	firstUpdate int
}

// kernel is the kernel of the family's n-th release; on Windows, the OS
// version nodes report (10.0.<build>.<update>).
func (f Family) kernel(n int) string {
	if f.Windows() {
		return fmt.Sprintf("10.0.%d.%d", f.Build, f.update(n))
	}
	return f.linuxKernel(n)
}

// update is the cumulative update of a Windows family's n-th release.
func (f Family) update(n int) int { return f.firstUpdate + 70*n }

// Windows says whether the family's nodes run Windows.
func (f Family) Windows() bool { return f.Build > 0 }

// cadence is the time between two releases: weekly for Linux, monthly
// (Patch Tuesday's cumulative update) for Windows.
func (f Family) cadence() (months, days int) {
	if f.Windows() {
		return 1, 0
	}
	return 0, 7
}

// Families by the agent pool osSKU values that select them.
var (
	ubuntu2204 = Family{Prefix: "AKSUbuntu-2204gen2containerd", OSImage: "Ubuntu 22.04.5 LTS",
		linuxKernel: func(n int) string { return fmt.Sprintf("5.15.0-%d-azure", 1060+n) }}
	ubuntu2404 = Family{Prefix: "AKSUbuntu-2404gen2containerd", OSImage: "Ubuntu 24.04.3 LTS",
		linuxKernel: func(n int) string { return fmt.Sprintf("6.8.0-%d-azure", 1020+n) }}
	azureLinux3 = Family{Prefix: "AKSAzureLinux-V3gen2", OSImage: "Microsoft Azure Linux 3.0",
		linuxKernel: func(n int) string { return fmt.Sprintf("6.6.%d.1-1.azl3", 80+n) }}
	cblMariner = Family{Prefix: "AKSCBLMariner-V2gen2", OSImage: "CBL-Mariner/Linux",
		linuxKernel: func(n int) string { return fmt.Sprintf("5.15.%d.1-1.cm2", 170+n) }}
	windows2022 = Family{Prefix: "AKSWindows-2022-containerd", OSImage: "Windows Server 2022 Datacenter", Build: 20348, firstUpdate: 3700}
	windows2025 = Family{Prefix: "AKSWindows-2025-containerd", OSImage: "Windows Server 2025 Datacenter", Build: 26100, firstUpdate: 3400}
)

// families are every image family, Linux first.
var families = []Family{ubuntu2204, ubuntu2404, azureLinux3, cblMariner, windows2022, windows2025}

// FamilyOf returns the image family of an agent pool OS SKU ("" is AKS's
// default, Ubuntu).
func FamilyOf(osSKU string) (Family, error) {
	switch strings.ToLower(osSKU) {
	case "", "ubuntu", "ubuntu2204":
		return ubuntu2204, nil
	case "ubuntu2404":
		return ubuntu2404, nil
	case "azurelinux", "azurelinux3":
		return azureLinux3, nil
	case "cblmariner":
		return cblMariner, nil
	case "windows2022":
		return windows2022, nil
	case "windows2025":
		return windows2025, nil
	}
	return Family{}, fmt.Errorf("no node images for OS SKU %q: the SKUs with images are %s", osSKU, strings.Join(append(LinuxOSSKUs(), WindowsOSSKUs()...), ", "))
}

// LinuxOSSKUs are the Linux OS SKUs that have node images.
func LinuxOSSKUs() []string {
	return []string{"Ubuntu", "Ubuntu2204", "Ubuntu2404", "AzureLinux", "AzureLinux3", "CBLMariner"}
}

// WindowsOSSKUs are the Windows OS SKUs that have node images, the default
// (AKS's for Kubernetes 1.25 and later) first. Windows Server 2019 is not
// among them: AKS ends it with Kubernetes 1.33.
func WindowsOSSKUs() []string {
	return []string{"Windows2022", "Windows2025"}
}

// Image is one released node image.
type Image struct {
	Family   Family
	Version  Version
	Kernel   string
	Released time.Time
	// Patch is the date of the security patches applied on top of the
	// image (SecurityPatch channel), or zero.
	Patch time.Time
}

// Name is the image's full name, as the node label
// kubernetes.azure.com/node-image-version carries it.
func (i Image) Name() string {
	name := i.Family.Prefix + "-" + i.Version.String()
	if !i.Patch.IsZero() {
		name += "-" + i.Patch.Format("2006.01.02")
	}
	return name
}

// Base is the image without its security patches.
func (i Image) Base() Image {
	i.Patch = time.Time{}
	return i
}

// Version is an image's <YYYYMM>.<DD>.<rev>: its release date and revision;
// for Windows <build>.<update>.<YYMMDD>, where Rev is the update.
type Version struct {
	Date time.Time
	Rev  int
	// Build is the Windows Server build; 0 for Linux images.
	Build int
}

func (v Version) String() string {
	if v.Build > 0 {
		return fmt.Sprintf("%d.%d.%s", v.Build, v.Rev, v.Date.Format("060102"))
	}
	return fmt.Sprintf("%s.%d", v.Date.Format("200601.02"), v.Rev)
}

// Compare orders versions by date, then revision.
func (v Version) Compare(o Version) int {
	if c := v.Date.Compare(o.Date); c != 0 {
		return c
	}
	return v.Rev - o.Rev
}

// ParseVersion parses "YYYYMM.DD.rev", or a Windows image's
// "build.update.YYMMDD".
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(s, ".")
	if len(parts) == 3 && len(parts[0]) == 5 && len(parts[2]) == 6 {
		build, berr := strconv.Atoi(parts[0])
		update, uerr := strconv.Atoi(parts[1])
		date, derr := time.Parse("060102", parts[2])
		if berr != nil || uerr != nil || derr != nil || build <= 0 || update < 0 {
			return Version{}, fmt.Errorf("Windows node image version %q is not build.update.YYMMDD", s)
		}
		return Version{Date: date, Rev: update, Build: build}, nil
	}
	if len(parts) != 3 || len(parts[0]) != 6 || len(parts[1]) != 2 {
		return Version{}, fmt.Errorf("node image version %q is not YYYYMM.DD.rev", s)
	}
	date, err := time.Parse("200601.02", parts[0]+"."+parts[1])
	if err != nil {
		return Version{}, fmt.Errorf("node image version %q: %w", s, err)
	}
	rev, err := strconv.Atoi(parts[2])
	if err != nil || rev < 0 {
		return Version{}, fmt.Errorf("node image version %q: revision is not a number", s)
	}
	return Version{Date: date, Rev: rev}, nil
}

// ParseName splits a full image name into its family prefix, version and
// security patch date (zero if none).
func ParseName(name string) (prefix string, v Version, patch time.Time, err error) {
	rest := name
	if i := strings.LastIndex(rest, "-"); i > 0 && strings.Count(rest[i+1:], ".") == 2 && len(rest[i+1:]) == len("2006.01.02") {
		if patch, err = time.Parse("2006.01.02", rest[i+1:]); err == nil {
			rest = rest[:i]
		} else {
			patch = time.Time{}
		}
	}
	i := strings.LastIndex(rest, "-")
	if i <= 0 {
		return "", Version{}, time.Time{}, fmt.Errorf("node image %q is not <family>-YYYYMM.DD.rev", name)
	}
	v, err = ParseVersion(rest[i+1:])
	if err != nil {
		return "", Version{}, time.Time{}, err
	}
	return rest[:i], v, patch, nil
}

// shippedReleases is how many releases of each family Slipway ships.
const shippedReleases = 12

// lastShipped is the release date of the newest image Slipway ships.
var lastShipped = time.Date(2026, time.November, 20, 0, 0, 0, 0, time.UTC)

// Shipped is the release history Slipway ships for a family, oldest first,
// a release each week (Linux) or month (Windows), as AKS publishes them.
func Shipped(f Family) []Image {
	months, days := f.cadence()
	out := make([]Image, 0, shippedReleases)
	for n := range shippedReleases {
		back := shippedReleases - 1 - n
		out = append(out, f.release(lastShipped.AddDate(0, -months*back, -days*back), n))
	}
	return out
}

// Next is the release that follows latest, with the next kernel.
func Next(f Family, latest Image, n int) Image {
	months, days := f.cadence()
	return f.release(latest.Version.Date.AddDate(0, months, days), n)
}

// release is the family's n-th release, out on date.
func (f Family) release(date time.Time, n int) Image {
	v := Version{Date: date}
	if f.Windows() {
		v.Build, v.Rev = f.Build, f.update(n)
	}
	return Image{Family: f, Version: v, Kernel: f.kernel(n), Released: date}
}

// KernelOf returns the kernel of the family's n-th release.
func (f Family) KernelOf(n int) string { return f.kernel(n) }
