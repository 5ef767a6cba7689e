// Package fleet lets several Slipway hosts (slipway serve processes, each
// with its own data directory) share one management plane and one
// datastore, the way hosted-control-plane systems run: a control plane is a
// set of stateless processes whose objects are in the shared datastore and
// whose record and PKI are in the management plane (Registry), so any host
// can run it.
//
// Each host registers as a Host in the management plane, with its capacity
// (clusters), and heartbeats through a Lease it renews every RenewEvery, as
// a Node does through its Lease. A new cluster is placed, by the first live
// host by name, on the live host with the most room (ManagedCluster
// status.host); only that host's per-cluster controllers act on it. When a
// host's Lease expires, the other hosts move its clusters to the live host
// with the most room, where they start from the registry and the datastore
// with their ports, and so their kubeconfigs, unchanged. A host that cannot
// renew its Lease stops its control planes before the Lease can expire
// (fencing), so a cluster never runs on two hosts at once; one that comes
// back runs only the clusters placed on it.
package fleet

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

// A host's Lease is named leasePrefix + its name and labelled
// LabelRole=host.
const (
	LabelRole   = "slipway.dev/role"
	roleHost    = "host"
	leasePrefix = "host-"
)

// Options configure a host's membership.
type Options struct {
	// Client reads and writes the management plane directly (not through
	// a cache: a takeover must see the Lease as it is).
	Client client.Client
	// Name is this host's name, unique among the hosts.
	Name string
	// Capacity is how many clusters this host runs at most by choice; a
	// cluster goes elsewhere while another live host has more room.
	Capacity int
	// ARMEndpoint is where this host answers ARM (Host.Spec).
	ARMEndpoint string
	// LeaseDuration is how long a Lease lasts unrenewed; zero means 10 s.
	// RenewEvery is how often it is renewed and the others' are checked;
	// zero means 2 s.
	LeaseDuration, RenewEvery time.Duration
	// Fence stops every control plane this host runs: it could not renew
	// its Lease and its clusters may be moving to another host.
	Fence func()
	// Log receives moves and fencing.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Fleet is this host's membership of the fleet.
type Fleet struct {
	o Options

	// place serialises this host's placements, so two clusters placed at
	// once here are counted one after the other.
	place sync.Mutex

	mu        sync.Mutex
	lastRenew time.Time
	fenced    bool
}

// New returns this host's membership; Register and Start make it live.
func New(o Options) *Fleet {
	o.LeaseDuration = cmp.Or(o.LeaseDuration, 10*time.Second)
	o.RenewEvery = cmp.Or(o.RenewEvery, 2*time.Second)
	o.Log = cmp.Or(o.Log, slog.Default())
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Fleet{o: o}
}

// Register creates or updates this host's Host and renews its Lease.
func (f *Fleet) Register(ctx context.Context) error {
	h := &slipwayv1.Host{}
	key := client.ObjectKey{Namespace: slipwayv1.Namespace, Name: f.o.Name}
	err := f.o.Client.Get(ctx, key, h)
	spec := slipwayv1.HostSpec{Capacity: f.o.Capacity, ARMEndpoint: f.o.ARMEndpoint}
	if apierrors.IsNotFound(err) {
		h = &slipwayv1.Host{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}, Spec: spec}
		err = f.o.Client.Create(ctx, h)
	} else if err == nil && h.Spec != spec {
		h.Spec = spec
		err = f.o.Client.Update(ctx, h)
	}
	if err == nil {
		err = f.renew(ctx)
	}
	if err == nil {
		err = f.report(ctx)
	}
	if err != nil {
		return fmt.Errorf("registering host %s: %w", f.o.Name, err)
	}
	f.o.Log.Info("Host registered", "host", f.o.Name, "capacity", f.o.Capacity, "leaseDuration", f.o.LeaseDuration)
	return nil
}

func leaseName(host string) string { return leasePrefix + host }

// renew writes this host's Lease with a fresh renewTime.
func (f *Fleet) renew(ctx context.Context) error {
	now := f.o.Now()
	lease := &coordinationv1.Lease{}
	key := client.ObjectKey{Namespace: slipwayv1.Namespace, Name: leaseName(f.o.Name)}
	err := f.o.Client.Get(ctx, key, lease)
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name,
			Labels: map[string]string{LabelRole: roleHost}}}
		lease.Spec.AcquireTime = &metav1.MicroTime{Time: now}
		f.fill(lease, now)
		err = f.o.Client.Create(ctx, lease)
	} else if err == nil {
		f.fill(lease, now)
		err = f.o.Client.Update(ctx, lease)
	}
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.lastRenew = now
	f.mu.Unlock()
	return nil
}

func (f *Fleet) fill(lease *coordinationv1.Lease, now time.Time) {
	lease.Spec.HolderIdentity = ptr.To(f.o.Name)
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(f.o.LeaseDuration / time.Second))
	lease.Spec.RenewTime = &metav1.MicroTime{Time: now}
}

// NeedLeaderElection is false: every host heartbeats and watches the others.
func (f *Fleet) NeedLeaderElection() bool { return false }

// Start renews this host's Lease and moves the clusters of hosts whose
// Lease expired, until ctx ends.
func (f *Fleet) Start(ctx context.Context) error {
	t := time.NewTicker(f.o.RenewEvery)
	defer t.Stop()
	ticks := 0 // the status is reported every fifth
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		f.heartbeat(ctx)
		ticks++
		if ticks%5 == 0 && !f.isFenced() {
			if err := f.report(ctx); err != nil && ctx.Err() == nil {
				f.o.Log.Warn("Reporting the host's status", "host", f.o.Name, "err", err)
			}
		}
		if !f.isFenced() {
			if err := f.takeOver(ctx); err != nil && ctx.Err() == nil {
				f.o.Log.Warn("Checking the other hosts", "host", f.o.Name, "err", err)
			}
		}
	}
}

// heartbeat renews the Lease; if it has gone unrenewed for so long that
// another host may soon take this host's clusters, it fences.
func (f *Fleet) heartbeat(ctx context.Context) {
	// A management plane that hangs must not hold the fencing back.
	renewCtx, cancel := context.WithTimeout(ctx, f.o.RenewEvery)
	err := f.renew(renewCtx)
	cancel()
	f.mu.Lock()
	since := f.o.Now().Sub(f.lastRenew)
	fence := err != nil && !f.fenced && since >= f.o.LeaseDuration-2*f.o.RenewEvery
	if fence {
		f.fenced = true
	}
	unfenced := err == nil && f.fenced
	if unfenced {
		f.fenced = false
	}
	f.mu.Unlock()
	switch {
	case fence:
		f.o.Log.Error("Host lost its lease: stopping its control planes, which other hosts may take over", "host", f.o.Name, "unrenewedFor", since.Round(time.Millisecond), "err", err)
		if f.o.Fence != nil {
			f.o.Fence()
		}
	case unfenced:
		f.o.Log.Info("Host renewed its lease again", "host", f.o.Name)
	case err != nil && ctx.Err() == nil:
		f.o.Log.Warn("Renewing the host's lease", "host", f.o.Name, "err", err)
	}
}

func (f *Fleet) isFenced() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fenced
}

// host is a host as its Lease tells.
type host struct {
	name     string
	capacity int
	live     bool
}

// hosts lists the registered hosts, live while their Lease is.
func (f *Fleet) hosts(ctx context.Context) ([]host, []slipwayv1.Host, error) {
	var registered slipwayv1.HostList
	if err := f.o.Client.List(ctx, &registered, client.InNamespace(slipwayv1.Namespace)); err != nil {
		return nil, nil, err
	}
	var leases coordinationv1.LeaseList
	if err := f.o.Client.List(ctx, &leases, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{LabelRole: roleHost}); err != nil {
		return nil, nil, err
	}
	now := f.o.Now()
	live := map[string]bool{}
	for _, l := range leases.Items {
		if l.Spec.RenewTime != nil && l.Spec.LeaseDurationSeconds != nil {
			live[ptr.Deref(l.Spec.HolderIdentity, "")] = now.Before(l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second))
		}
	}
	out := make([]host, 0, len(registered.Items))
	for _, h := range registered.Items {
		out = append(out, host{name: h.Name, capacity: h.Spec.Capacity, live: live[h.Name]})
	}
	return out, registered.Items, nil
}

// report writes this host's status: Ready, and how many clusters it runs.
func (f *Fleet) report(ctx context.Context) error {
	_, placed, err := f.clusters(ctx)
	if err != nil {
		return err
	}
	return f.setStatus(ctx, f.o.Name, "True", placed[f.o.Name])
}

// setStatus writes a Host's status if it changed.
func (f *Fleet) setStatus(ctx context.Context, name, ready string, clusters int) error {
	h := &slipwayv1.Host{}
	if err := f.o.Client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: name}, h); err != nil {
		return client.IgnoreNotFound(err)
	}
	want := slipwayv1.HostStatus{Ready: ready, Clusters: clusters}
	if h.Status == want {
		return nil
	}
	h.Status = want
	return client.IgnoreNotFound(f.o.Client.Status().Update(ctx, h))
}

// choose returns the live host with the most room (capacity less the
// clusters placed on it), the first by name among equals; "" if none is
// live. A host that is full still takes a cluster if none has room: the
// cluster runs, if slower, rather than not at all.
func choose(hosts []host, placed map[string]int) string {
	best, bestRoom := "", 0
	slices.SortFunc(hosts, func(a, b host) int { return cmp.Compare(a.name, b.name) })
	for _, h := range hosts {
		if !h.live {
			continue
		}
		room := h.capacity - placed[h.name]
		if best == "" || room > bestRoom {
			best, bestRoom = h.name, room
		}
	}
	return best
}

// clusters lists the clusters, and how many each host runs.
func (f *Fleet) clusters(ctx context.Context) ([]slipwayv1.ManagedCluster, map[string]int, error) {
	var list slipwayv1.ManagedClusterList
	if err := f.o.Client.List(ctx, &list, client.InNamespace(slipwayv1.Namespace)); err != nil {
		return nil, nil, err
	}
	placed := map[string]int{}
	for _, mc := range list.Items {
		if mc.Status.Host != "" {
			placed[mc.Status.Host]++
		}
	}
	return list.Items, placed, nil
}

// Mine reports whether this host runs mc's control plane: it is placed
// here and this host holds its Lease (a fenced host runs nothing).
func (f *Fleet) Mine(mc *slipwayv1.ManagedCluster) bool {
	return mc.Status.Host == f.o.Name && !f.isFenced()
}

// Place places mc on the live host with the most room if no host runs it
// yet, and reports whether this host does. It writes mc's status: the
// caller's copy is updated.
func (f *Fleet) Place(ctx context.Context, mc *slipwayv1.ManagedCluster) (bool, error) {
	if mc.Status.Host != "" || f.isFenced() {
		return f.Mine(mc), nil
	}
	f.place.Lock()
	defer f.place.Unlock()
	hosts, _, err := f.hosts(ctx)
	if err != nil {
		return false, fmt.Errorf("placing cluster %s: %w", mc.Spec.ResourceID, err)
	}
	_, placed, err := f.clusters(ctx)
	if err != nil {
		return false, fmt.Errorf("placing cluster %s: %w", mc.Spec.ResourceID, err)
	}
	// One host places, the first live one by name, so placements are
	// made one after the other with the counts of those before; the
	// others wait for its write (a placer that just died is replaced
	// once its Lease expires).
	if placer := firstLive(hosts); placer != f.o.Name {
		return false, nil
	}
	target := choose(hosts, placed)
	if target == "" {
		return false, fmt.Errorf("placing cluster %s: no host is live", mc.Spec.ResourceID)
	}
	// The resourceVersion fences the write: of two hosts placing the same
	// cluster at once, one gets a conflict and reads the other's choice.
	mc.Status.Host = target
	if err := f.o.Client.Status().Update(ctx, mc); err != nil {
		mc.Status.Host = ""
		return false, fmt.Errorf("placing cluster %s: %w", mc.Spec.ResourceID, err)
	}
	f.o.Log.Info("Cluster placed", "cluster", mc.Spec.ResourceID, "host", target, "room", hostRoom(hosts, placed, target))
	return target == f.o.Name, nil
}

// firstLive is the name of the first live host by name, or "".
func firstLive(hosts []host) string {
	first := ""
	for _, h := range hosts {
		if h.live && (first == "" || h.name < first) {
			first = h.name
		}
	}
	return first
}

func hostRoom(hosts []host, placed map[string]int, name string) int {
	for _, h := range hosts {
		if h.name == name {
			return h.capacity - placed[name]
		}
	}
	return 0
}

// takeOver moves the clusters of every host whose Lease has expired to the
// live hosts with the most room. Any host may move any cluster: the
// resourceVersion of each write makes one of them win.
func (f *Fleet) takeOver(ctx context.Context) error {
	hosts, registered, err := f.hosts(ctx)
	if err != nil {
		return err
	}
	dead := map[string]bool{}
	for _, h := range hosts {
		if !h.live {
			dead[h.name] = true
		}
	}
	if len(dead) == 0 {
		return nil
	}
	clusters, placed, err := f.clusters(ctx)
	if err != nil {
		return err
	}
	for i := range clusters {
		mc := &clusters[i]
		from := mc.Status.Host
		if !dead[from] {
			continue
		}
		to := choose(hosts, placed)
		if to == "" {
			return nil // no host is live, this one included
		}
		mc.Status.Host = to
		if err := f.o.Client.Status().Update(ctx, mc); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				continue // another host moved it, or it is gone
			}
			return fmt.Errorf("moving cluster %s from %s: %w", mc.Spec.ResourceID, from, err)
		}
		placed[from]--
		placed[to]++
		f.o.Log.Info("Cluster moved off a host whose lease expired", "cluster", mc.Spec.ResourceID, "from", from, "to", to)
	}
	// A dead host shows as not Ready, with what it still runs (nothing,
	// once every cluster has moved).
	for _, h := range registered {
		if dead[h.Name] {
			if err := f.setStatus(ctx, h.Name, "False", placed[h.Name]); err != nil && !apierrors.IsConflict(err) {
				return err
			}
		}
	}
	return nil
}
