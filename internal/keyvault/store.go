package keyvault

import (
	"context"
	"strconv"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

// store reads vaults and secrets through the controller's cache and writes
// them to the API server. A data-plane call is then one read of memory,
// not two round trips; and this process's own writes are seen at once,
// before the cache has them, so a secret set is read back by the next
// call, and a vault deleted is gone for it.
type store struct {
	client.Client               // writes and lists: the API server
	cache         client.Reader // gets
	now           func() time.Time

	mu     sync.Mutex
	recent map[types.NamespacedName]written
}

// written is an object this process wrote (nil: deleted), and the
// resource version the cache must reach to be at least as new.
type written struct {
	obj  client.Object
	rv   uint64
	when time.Time
}

// writtenFor is how long a write is remembered: the cache has it long
// before that, or another process's writes have overtaken it.
const writtenFor = 30 * time.Second

func newStore(c client.Client, cache client.Reader) *store {
	if cache == nil {
		cache = c
	}
	return &store{Client: c, cache: cache, now: time.Now, recent: map[types.NamespacedName]written{}}
}

func rvOf(obj client.Object) uint64 {
	rv, _ := strconv.ParseUint(obj.GetResourceVersion(), 10, 64)
	return rv
}

// Get reads through the cache, unless this process wrote something newer.
func (s *store) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	err := s.cache.Get(ctx, key, obj, opts...)
	s.mu.Lock()
	w, ok := s.recent[key]
	if ok && s.now().Sub(w.when) > writtenFor {
		delete(s.recent, key)
		ok = false
	}
	s.mu.Unlock()
	if !ok || client.IgnoreNotFound(err) != nil {
		return err
	}
	if err == nil && rvOf(obj) >= w.rv || apierrors.IsNotFound(err) && w.obj == nil {
		// The cache has caught up.
		s.mu.Lock()
		delete(s.recent, key)
		s.mu.Unlock()
		return err
	}
	if w.obj == nil {
		return apierrors.NewNotFound(schema.GroupResource{Group: slipwayv1.GroupVersion.Group, Resource: "objects"}, key.Name)
	}
	switch dst := obj.(type) {
	case *slipwayv1.Vault:
		*dst = *w.obj.(*slipwayv1.Vault).DeepCopy()
	case *slipwayv1.VaultSecret:
		*dst = *w.obj.(*slipwayv1.VaultSecret).DeepCopy()
	default:
		return s.Client.Get(ctx, key, obj, opts...)
	}
	return nil
}

func (s *store) remember(obj client.Object, deleted bool) {
	key := client.ObjectKeyFromObject(obj)
	w := written{rv: rvOf(obj), when: s.now()}
	if deleted {
		w.rv++ // any version the cache holds of it is older
	} else {
		w.obj = obj.DeepCopyObject().(client.Object)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, old := range s.recent {
		if w.when.Sub(old.when) > writtenFor {
			delete(s.recent, k)
		}
	}
	s.recent[key] = w
}

// Create writes to the API server and remembers the write.
func (s *store) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if err := s.Client.Create(ctx, obj, opts...); err != nil {
		return err
	}
	s.remember(obj, false)
	return nil
}

// Update writes to the API server and remembers the write.
func (s *store) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if err := s.Client.Update(ctx, obj, opts...); err != nil {
		return err
	}
	s.remember(obj, false)
	return nil
}

// Delete deletes from the API server and remembers the deletion.
func (s *store) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	if err := s.Client.Delete(ctx, obj, opts...); err != nil {
		return err
	}
	s.remember(obj, true)
	return nil
}
