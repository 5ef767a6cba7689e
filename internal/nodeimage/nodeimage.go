// Package nodeimage is the catalog of node OS images: the weekly releases of
// each image family (one per OS SKU) in AKS's version format, the history
// Slipway ships with, and the parsing and ordering of image names.
//
// A node image is named <family>-<YYYYMM>.<DD>.<rev>, for example
// AKSUbuntu-2204gen2containerd-202511.14.0. Nodes on the SecurityPatch
// channel carry the base image they were built from plus the date of the
// security patches applied to it: AKSUbuntu-2204gen2containerd-202511.14.0-2025.11.20.
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
	// kernel gives the kernel of the family's n-th weekly release.
	kernel func(n int) string
}

// Families by the agent pool osSKU values that select them.
var (
	ubuntu2204 = Family{Prefix: "AKSUbuntu-2204gen2containerd", OSImage: "Ubuntu 22.04.5 LTS",
		kernel: func(n int) string { return fmt.Sprintf("5.15.0-%d-azure", 1060+n) }}
	ubuntu2404 = Family{Prefix: "AKSUbuntu-2404gen2containerd", OSImage: "Ubuntu 24.04.3 LTS",
		kernel: func(n int) string { return fmt.Sprintf("6.8.0-%d-azure", 1020+n) }}
	azureLinux3 = Family{Prefix: "AKSAzureLinux-V3gen2", OSImage: "Microsoft Azure Linux 3.0",
		kernel: func(n int) string { return fmt.Sprintf("6.6.%d.1-1.azl3", 80+n) }}
	cblMariner = Family{Prefix: "AKSCBLMariner-V2gen2", OSImage: "CBL-Mariner/Linux",
		kernel: func(n int) string { return fmt.Sprintf("5.15.%d.1-1.cm2", 170+n) }}
)

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
	}
	return Family{}, fmt.Errorf("no Linux node images for OS SKU %q: the SKUs with images are %s", osSKU, strings.Join(LinuxOSSKUs(), ", "))
}

// LinuxOSSKUs are the OS SKUs that have node images.
func LinuxOSSKUs() []string {
	return []string{"Ubuntu", "Ubuntu2204", "Ubuntu2404", "AzureLinux", "AzureLinux3", "CBLMariner"}
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

// Version is an image's <YYYYMM>.<DD>.<rev>: its release date and revision.
type Version struct {
	Date time.Time
	Rev  int
}

func (v Version) String() string {
	return fmt.Sprintf("%s.%d", v.Date.Format("200601.02"), v.Rev)
}

// Compare orders versions by date, then revision.
func (v Version) Compare(o Version) int {
	if c := v.Date.Compare(o.Date); c != 0 {
		return c
	}
	return v.Rev - o.Rev
}

// ParseVersion parses "YYYYMM.DD.rev".
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(s, ".")
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

// shippedWeeks is how many weekly releases of each family Slipway ships.
const shippedWeeks = 12

// lastShipped is the release date of the newest image Slipway ships.
var lastShipped = time.Date(2026, time.November, 20, 0, 0, 0, 0, time.UTC)

// Shipped is the release history Slipway ships for a family: a release each
// week, oldest first, as AKS publishes them.
func Shipped(f Family) []Image {
	out := make([]Image, 0, shippedWeeks)
	for n := range shippedWeeks {
		date := lastShipped.AddDate(0, 0, -7*(shippedWeeks-1-n))
		out = append(out, Image{Family: f, Version: Version{Date: date}, Kernel: f.kernel(n), Released: date})
	}
	return out
}

// Next is the release that follows latest: a week later, revision 0, with
// the next kernel.
func Next(f Family, latest Image, n int) Image {
	date := latest.Version.Date.AddDate(0, 0, 7)
	return Image{Family: f, Version: Version{Date: date}, Kernel: f.kernel(n), Released: date}
}

// KernelOf returns the kernel of the family's n-th release.
func (f Family) KernelOf(n int) string { return f.kernel(n) }
