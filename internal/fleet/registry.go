package fleet

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/hosting"
)

// Registry keeps each control plane's record and PKI in a Secret of the
// management plane (hosting.Registry), readable by the hosts only.
type Registry struct {
	Client client.Client
}

var _ hosting.Registry = Registry{}

const registryPrefix = "controlplane-"

func registryKey(id string) client.ObjectKey {
	return client.ObjectKey{Namespace: slipwayv1.Namespace, Name: registryPrefix + id}
}

// Put replaces what is kept of cluster id.
func (r Registry) Put(ctx context.Context, id string, files map[string][]byte) error {
	s := &corev1.Secret{}
	err := r.Client.Get(ctx, registryKey(id), s)
	if apierrors.IsNotFound(err) {
		s = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: slipwayv1.Namespace, Name: registryPrefix + id,
			Labels: map[string]string{LabelRole: "controlplane"}}, Data: files}
		return r.Client.Create(ctx, s)
	}
	if err != nil {
		return err
	}
	s.Data = files
	return r.Client.Update(ctx, s)
}

// Get returns what Put kept.
func (r Registry) Get(ctx context.Context, id string) (map[string][]byte, error) {
	s := &corev1.Secret{}
	err := r.Client.Get(ctx, registryKey(id), s)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("control plane %s: %w", id, hosting.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return s.Data, nil
}

// Delete forgets cluster id.
func (r Registry) Delete(ctx context.Context, id string) error {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: slipwayv1.Namespace, Name: registryPrefix + id}}
	return client.IgnoreNotFound(r.Client.Delete(ctx, s))
}

// PortLedger records which cluster holds each port, in one ConfigMap of the
// management plane (port → cluster ID), written with optimistic
// concurrency so two hosts never hand out the same port
// (hosting.PortLedger). 10,000 ports take about 250 KB of its 1 MiB.
type PortLedger struct {
	Client client.Client
}

var _ hosting.PortLedger = PortLedger{}

var ledgerKey = client.ObjectKey{Namespace: slipwayv1.Namespace, Name: "slipway-ports"}

// Claim returns n ports of rng for owner.
func (l PortLedger) Claim(ctx context.Context, owner string, n int, rng hosting.PortRange, usable func(int) bool) ([]int, error) {
	for {
		cm, err := l.ledger(ctx)
		if err != nil {
			return nil, err
		}
		var held []int
		for port, o := range cm.Data {
			if o == owner {
				p, _ := strconv.Atoi(port)
				held = append(held, p)
			}
		}
		if len(held) >= n {
			slices.Sort(held)
			return held[:n], nil
		}
		ports := held
		for p := rng.First; p <= rng.Last && len(ports) < n; p++ {
			if _, taken := cm.Data[strconv.Itoa(p)]; taken || !usable(p) {
				continue
			}
			ports = append(ports, p)
		}
		if len(ports) < n {
			return nil, fmt.Errorf("no free ports left in %d-%d", rng.First, rng.Last)
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		for _, p := range ports {
			cm.Data[strconv.Itoa(p)] = owner
		}
		err = l.Client.Update(ctx, cm)
		if apierrors.IsConflict(err) {
			continue // another host claimed meanwhile: look again
		}
		if err != nil {
			return nil, fmt.Errorf("claiming ports for %s: %w", owner, err)
		}
		return ports, nil
	}
}

// Release frees every port owner holds.
func (l PortLedger) Release(ctx context.Context, owner string) error {
	for {
		cm, err := l.ledger(ctx)
		if err != nil {
			return err
		}
		before := len(cm.Data)
		maps.DeleteFunc(cm.Data, func(_, o string) bool { return o == owner })
		if len(cm.Data) == before {
			return nil
		}
		err = l.Client.Update(ctx, cm)
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("releasing the ports of %s: %w", owner, err)
		}
		return nil
	}
}

// ledger reads the ledger, making it on first use.
func (l PortLedger) ledger(ctx context.Context) (*corev1.ConfigMap, error) {
	cm := &corev1.ConfigMap{}
	err := l.Client.Get(ctx, ledgerKey, cm)
	if apierrors.IsNotFound(err) {
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ledgerKey.Namespace, Name: ledgerKey.Name}}
		err = l.Client.Create(ctx, cm)
		if apierrors.IsAlreadyExists(err) {
			err = l.Client.Get(ctx, ledgerKey, cm)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading the port ledger: %w", err)
	}
	return cm, nil
}
