package nodeimage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

// Catalog is every node image: the shipped history plus what operators
// published since, stored as NodeImage objects in the management plane.
type Catalog struct {
	// Reader reads the published images; it may be a cache.
	Reader client.Reader
	// Fresh, if set, is asked when Reader does not know an image that
	// Resolve is asked for: a cache may trail an image published a moment
	// ago.
	Fresh client.Reader
	// Writer publishes images; only Publish needs it.
	Writer client.Writer
}

// ErrNotNewer says a published version is not newer than the family's
// latest image.
var ErrNotNewer = errors.New("not newer than the latest image")

// List returns a family's images, oldest first.
func (c *Catalog) List(ctx context.Context, f Family) ([]Image, error) {
	return c.list(ctx, c.Reader, f)
}

func (c *Catalog) list(ctx context.Context, r client.Reader, f Family) ([]Image, error) {
	images := Shipped(f)
	var published slipwayv1.NodeImageList
	if err := r.List(ctx, &published, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{slipwayv1.LabelImageFamily: f.Prefix}); err != nil {
		return nil, fmt.Errorf("listing published node images: %w", err)
	}
	for _, p := range published.Items {
		v, err := ParseVersion(p.Spec.Version)
		if err != nil {
			continue // written by this package; never malformed
		}
		images = append(images, Image{Family: f, Version: v, Kernel: p.Spec.KernelVersion, Released: p.Spec.Released.Time})
	}
	slices.SortFunc(images, func(a, b Image) int { return a.Version.Compare(b.Version) })
	return slices.CompactFunc(images, func(a, b Image) bool { return a.Version.Compare(b.Version) == 0 }), nil
}

// Latest returns the newest image for an agent pool OS SKU.
func (c *Catalog) Latest(ctx context.Context, osSKU string) (Image, error) {
	f, err := FamilyOf(osSKU)
	if err != nil {
		return Image{}, err
	}
	images, err := c.List(ctx, f)
	if err != nil {
		return Image{}, err
	}
	return images[len(images)-1], nil
}

// Resolve finds the image a full name (as on a node label) names, security
// patch date included. An unknown name resolves to its family's details
// with no kernel.
func (c *Catalog) Resolve(ctx context.Context, name string) (Image, error) {
	prefix, v, patch, err := ParseName(name)
	if err != nil {
		return Image{}, err
	}
	for _, f := range families {
		if f.Prefix != prefix {
			continue
		}
		readers := []client.Reader{c.Reader}
		if c.Fresh != nil {
			readers = append(readers, c.Fresh)
		}
		for _, r := range readers {
			images, err := c.list(ctx, r, f)
			if err != nil {
				return Image{}, err
			}
			for _, img := range images {
				if img.Version.Compare(v) == 0 {
					img.Patch = patch
					return img, nil
				}
			}
		}
		return Image{Family: f, Version: v, Patch: patch}, nil
	}
	return Image{}, fmt.Errorf("node image %q is of no known family", name)
}

// Publish records that a newer image of an OS SKU's family came out: the
// given version (YYYYMM.DD.rev), or else the next weekly release.
func (c *Catalog) Publish(ctx context.Context, osSKU, version string) (Image, error) {
	f, err := FamilyOf(osSKU)
	if err != nil {
		return Image{}, err
	}
	images, err := c.List(ctx, f)
	if err != nil {
		return Image{}, err
	}
	latest := images[len(images)-1]
	img := Next(f, latest, len(images))
	if version != "" {
		v, err := ParseVersion(version)
		if err != nil {
			return Image{}, err
		}
		if v.Compare(latest.Version) <= 0 {
			return Image{}, fmt.Errorf("node image %s-%s: %w (%s)", f.Prefix, version, ErrNotNewer, latest.Name())
		}
		img.Version, img.Released = v, v.Date
	}
	obj := &slipwayv1.NodeImage{
		ObjectMeta: metav1.ObjectMeta{
			Name: strings.ToLower(img.Name()), Namespace: slipwayv1.Namespace,
			Labels: map[string]string{slipwayv1.LabelImageFamily: f.Prefix},
		},
		Spec: slipwayv1.NodeImageSpec{Family: f.Prefix, Version: img.Version.String(), KernelVersion: img.Kernel, Released: metav1.NewTime(img.Released)},
	}
	if err := c.Writer.Create(ctx, obj); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return Image{}, fmt.Errorf("node image %s: %w", img.Name(), ErrNotNewer)
		}
		return Image{}, fmt.Errorf("publishing node image %s: %w", img.Name(), err)
	}
	return img, nil
}

// SecurityPatched is base with the security patches of date applied, as the
// SecurityPatch channel gives nodes.
func SecurityPatched(base Image, date time.Time) Image {
	base.Patch = time.Date(date.Year(), date.Month(), date.Day(), 0, 0, 0, 0, time.UTC)
	return base
}
