package addons

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// WarmLabel marks the CRDs Warm made on a spare control plane before any
// cluster claimed it. The first Apply settles them: kept (the label goes)
// if the cluster's spec ships them, deleted if not, so a cluster made from
// a spare has the CRDs a cold create would have given it.
const WarmLabel = "slipway.dev/warmed"

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// Warm makes a spare control plane's API server ready for the add-ons of a
// cluster with AKS's defaults. The API server builds a new CRD's serving
// state, for server-side apply a type converter over its whole OpenAPI
// spec, on the first request of the CRD's kind: about 2 s of the
// VolumeSnapshotClass's first apply on this project's machine, the
// longest step of a create's add-ons. Warm makes the snapshot CRDs and
// lists each kind until it is served, so that cost is paid before a
// create claims the spare.
func Warm(ctx context.Context, dc dynamic.Interface) error {
	crds, err := crdsIn(snapshotCRDs, "snapshotcrds")
	if err != nil {
		return err
	}
	for _, u := range crds {
		labels := u.GetLabels()
		labels[WarmLabel] = "true"
		u.SetLabels(labels)
		if err := apply(ctx, dc, u); err != nil {
			return err
		}
	}
	for _, u := range crds {
		group, _, _ := unstructured.NestedString(u.Object, "spec", "group")
		plural, _, _ := unstructured.NestedString(u.Object, "spec", "names", "plural")
		gvr := schema.GroupVersionResource{Group: group, Version: "v1", Resource: plural}
		if err := listWhenServed(ctx, dc, gvr); err != nil {
			return fmt.Errorf("warming %s: %w", u.GetName(), err)
		}
	}
	return nil
}

// listWhenServed lists gvr until the API server serves it.
func listWhenServed(ctx context.Context, dc dynamic.Interface, gvr schema.GroupVersionResource) error {
	for {
		_, err := dc.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1})
		if !apierrors.IsNotFound(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// settleWarmed keeps the warmed CRDs spec ships, without their label, and
// deletes the others.
func settleWarmed(ctx context.Context, dc dynamic.Interface, objs map[string]bool) error {
	list, err := dc.Resource(crdResource).List(ctx, metav1.ListOptions{LabelSelector: WarmLabel})
	if err != nil {
		return fmt.Errorf("listing warmed CRDs: %w", err)
	}
	for _, crd := range list.Items {
		if objs["CustomResourceDefinition/"+crd.GetName()] {
			patch := []byte(`{"metadata":{"labels":{"` + WarmLabel + `":null}}}`)
			_, err = dc.Resource(crdResource).Patch(ctx, crd.GetName(), types.MergePatchType, patch, metav1.PatchOptions{})
		} else {
			err = dc.Resource(crdResource).Delete(ctx, crd.GetName(), metav1.DeleteOptions{})
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("settling warmed CRD %s: %w", crd.GetName(), err)
		}
	}
	return nil
}
