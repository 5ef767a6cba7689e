package nodeimage

import (
	"testing"
	"time"
)

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		name, prefix, version, patch string
		bad                          bool
	}{
		{name: "AKSUbuntu-2204gen2containerd-202405.27.0", prefix: "AKSUbuntu-2204gen2containerd", version: "202405.27.0"},
		{name: "AKSUbuntu-2404-202601.27.0", prefix: "AKSUbuntu-2404", version: "202601.27.0"},
		{name: "AKSAzureLinux-V3gen2-202602.13.5", prefix: "AKSAzureLinux-V3gen2", version: "202602.13.5"},
		{name: "AKSUbuntu-2204gen2containerd-202410.27.0-2024.12.01", prefix: "AKSUbuntu-2204gen2containerd", version: "202410.27.0", patch: "2024.12.01"},
		{name: "AKSUbuntu-2204gen2containerd", bad: true},
		{name: "AKSUbuntu-2204gen2containerd-2024.27.0", bad: true},
		{name: "nonsense", bad: true},
	} {
		prefix, v, patch, err := ParseName(tc.name)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseName(%q) = %s %s, want an error", tc.name, prefix, v)
			}
			continue
		}
		if err != nil {
			t.Fatalf("ParseName(%q): %v", tc.name, err)
		}
		gotPatch := ""
		if !patch.IsZero() {
			gotPatch = patch.Format("2006.01.02")
		}
		if prefix != tc.prefix || v.String() != tc.version || gotPatch != tc.patch {
			t.Errorf("ParseName(%q) = %q %q %q, want %q %q %q", tc.name, prefix, v, gotPatch, tc.prefix, tc.version, tc.patch)
		}
		img := Image{Family: Family{Prefix: prefix}, Version: v, Patch: patch}
		if img.Name() != tc.name {
			t.Errorf("round trip of %q gave %q", tc.name, img.Name())
		}
	}
}

func TestShippedIsWeeklyAndOrdered(t *testing.T) {
	f, err := FamilyOf("Ubuntu")
	if err != nil {
		t.Fatal(err)
	}
	images := Shipped(f)
	for i := 1; i < len(images); i++ {
		if images[i].Version.Compare(images[i-1].Version) <= 0 {
			t.Errorf("%s is not newer than %s", images[i].Name(), images[i-1].Name())
		}
		if d := images[i].Released.Sub(images[i-1].Released); d != 7*24*time.Hour {
			t.Errorf("%s came %s after the one before, want a week", images[i].Name(), d)
		}
		if images[i].Kernel == images[i-1].Kernel {
			t.Errorf("%s has the kernel of the release before", images[i].Name())
		}
	}
	next := Next(f, images[len(images)-1], len(images))
	if next.Name() != "AKSUbuntu-2204gen2containerd-202611.27.0" {
		t.Errorf("next weekly image = %s", next.Name())
	}
	if _, err := FamilyOf("Windows2019"); err == nil {
		t.Error("Windows Server 2019 images are shipped, though AKS ends them with Kubernetes 1.33")
	}
	patched := SecurityPatched(images[0], time.Date(2026, 12, 1, 15, 4, 0, 0, time.UTC))
	if patched.Name() != images[0].Name()+"-2026.12.01" {
		t.Errorf("security patched name = %s", patched.Name())
	}
}

// TestWindowsImages: Windows images come monthly, are named as AKS names
// them, and parse back.
func TestWindowsImages(t *testing.T) {
	f, err := FamilyOf("Windows2022")
	if err != nil {
		t.Fatal(err)
	}
	images := Shipped(f)
	last := images[len(images)-1]
	if got, want := last.Name(), "AKSWindows-2022-containerd-20348.4470.261120"; got != want {
		t.Errorf("newest Windows 2022 image = %s, want %s", got, want)
	}
	if last.Kernel != "10.0.20348.4470" {
		t.Errorf("its kernel = %s", last.Kernel)
	}
	for i := 1; i < len(images); i++ {
		if images[i].Version.Compare(images[i-1].Version) <= 0 || images[i].Released.Month() == images[i-1].Released.Month() {
			t.Errorf("%s does not come a month after %s", images[i].Name(), images[i-1].Name())
		}
	}
	prefix, v, patch, err := ParseName(last.Name())
	if err != nil || prefix != f.Prefix || v != last.Version || !patch.IsZero() {
		t.Errorf("ParseName(%s) = %s %v %v %v", last.Name(), prefix, v, patch, err)
	}
	if next := Next(f, last, len(images)); next.Name() != "AKSWindows-2022-containerd-20348.4540.261220" {
		t.Errorf("next Windows image = %s", next.Name())
	}
}
