// Package readcache serves a controller-runtime client's reads from the
// manager's informer cache with read-your-writes, for callers that mark
// their requests as reads.
package readcache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// Client is a client of the management plane that writes to the API
// server and, for requests marked with AllowCache, reads a few kinds from
// the manager's informer cache instead, keeping read-your-writes: a read
// of a kind waits until the cache has seen every write this client made to
// that kind (resourceVersions of one etcd are ordered; watch events of a
// kind arrive in order, each after the cache's store has it), and goes to
// the API server if the cache is slower than a bound. Everything else
// (reads without the mark, other kinds, an unsynced cache) is read from
// the API server, as before.
//
// It is what makes an ARM GET cheaper than the API servers behind it: the
// front door writes through this client, and its GETs, which are most of
// its traffic, read memory.
type Client struct {
	client.Client // the API server: writes, and every read not served from the cache
	cache         client.Reader
	kinds         map[schema.GroupVersionKind]*watermark
	// MaxWait bounds how long a read waits for the cache to see this
	// client's writes before it reads the API server instead.
	MaxWait time.Duration
}

// watermark follows one kind: the highest resourceVersion the cache has
// seen, and the highest this client wrote.
type watermark struct {
	reg toolscache.ResourceEventHandlerRegistration

	mu       sync.Mutex
	seen     uint64
	written  uint64
	advanced chan struct{} // closed and replaced each time seen grows
	// directUntil sends reads to the API server for a while after a write
	// whose resourceVersion is not known (a delete of an object read
	// without one).
	directUntil time.Time
}

// New returns direct with reads of kinds served from c.
func New(ctx context.Context, direct client.Client, c cache.Cache, kinds ...client.Object) (*Client, error) {
	r := &Client{Client: direct, cache: c, kinds: map[schema.GroupVersionKind]*watermark{}, MaxWait: 200 * time.Millisecond}
	for _, obj := range kinds {
		gvk, err := apiutil.GVKForObject(obj, direct.Scheme())
		if err != nil {
			return nil, err
		}
		inf, err := c.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
		if err != nil {
			return nil, fmt.Errorf("informer for %s: %w", gvk.Kind, err)
		}
		w := &watermark{advanced: make(chan struct{})}
		see := func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if o, ok := obj.(client.Object); ok {
				w.see(o.GetResourceVersion())
			}
		}
		w.reg, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    see,
			UpdateFunc: func(_, obj any) { see(obj) },
			DeleteFunc: see,
		})
		if err != nil {
			return nil, err
		}
		r.kinds[gvk] = w
	}
	return r, nil
}

type allowCacheKey struct{}

// AllowCache marks ctx as a read-only request whose reads may come from
// the cache. Requests that write read from the API server: a decision
// (is the cluster busy? does the etag match?) is taken on what is stored.
func AllowCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, allowCacheKey{}, true)
}

func cacheAllowed(ctx context.Context) bool {
	ok, _ := ctx.Value(allowCacheKey{}).(bool)
	return ok
}

func rv(s string) uint64 {
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}

func (w *watermark) see(resourceVersion string) {
	n := rv(resourceVersion)
	w.mu.Lock()
	defer w.mu.Unlock()
	if n > w.seen {
		w.seen = n
		close(w.advanced)
		w.advanced = make(chan struct{})
	}
}

func (w *watermark) wrote(resourceVersion string) {
	n := rv(resourceVersion)
	w.mu.Lock()
	defer w.mu.Unlock()
	if n == 0 {
		w.directUntil = time.Now().Add(time.Second)
		return
	}
	w.written = max(w.written, n)
}

// caughtUp waits until the cache has seen every write, for at most wait.
func (w *watermark) caughtUp(ctx context.Context, wait time.Duration) bool {
	if !w.reg.HasSynced() {
		return false
	}
	var timeout <-chan time.Time
	for {
		w.mu.Lock()
		ok, direct, advanced := w.seen >= w.written, time.Now().Before(w.directUntil), w.advanced
		w.mu.Unlock()
		if direct {
			return false
		}
		if ok {
			return true
		}
		if timeout == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-advanced:
		case <-timeout:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func (r *Client) mark(obj runtime.Object) *watermark {
	gvk, err := apiutil.GVKForObject(obj, r.Scheme())
	if err != nil {
		return nil
	}
	gvk.Kind = strings.TrimSuffix(gvk.Kind, "List")
	return r.kinds[gvk]
}

func (r *Client) cached(ctx context.Context, obj runtime.Object) bool {
	if !cacheAllowed(ctx) {
		return false
	}
	w := r.mark(obj)
	return w != nil && w.caughtUp(ctx, r.MaxWait)
}

// settling is implemented by objects a controller is still acting on (an
// operation under way): their status is written by others than this
// client, so the cache may trail what an ARM client already saw end (the
// operation's own status, read fresh). Such objects are read again from the
// API server.
type settling interface{ Settling() bool }

func isSettling(obj runtime.Object) bool {
	s, ok := obj.(settling)
	return ok && s.Settling()
}

// Get reads from the cache when allowed and caught up.
func (r *Client) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if r.cached(ctx, obj) {
		err := r.cache.Get(ctx, key, obj, opts...)
		if err != nil || !isSettling(obj) {
			return err
		}
	}
	return r.Client.Get(ctx, key, obj, opts...)
}

// List reads from the cache when allowed and caught up.
func (r *Client) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if r.cached(ctx, list) {
		err := r.cache.List(ctx, list, opts...)
		if err != nil {
			return err
		}
		if meta.EachListItem(list, func(o runtime.Object) error {
			if isSettling(o) {
				return errSettling
			}
			return nil
		}) == nil {
			return nil
		}
	}
	return r.Client.List(ctx, list, opts...)
}

var errSettling = errors.New("an object is settling")

func (r *Client) wrote(obj client.Object) {
	if w := r.mark(obj); w != nil {
		w.wrote(obj.GetResourceVersion())
	}
}

// Create, Update, Patch and Delete write to the API server and note the
// resourceVersion the cache must reach before it serves that kind again.
func (r *Client) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	err := r.Client.Create(ctx, obj, opts...)
	if err == nil {
		r.wrote(obj)
	}
	return err
}

func (r *Client) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	err := r.Client.Update(ctx, obj, opts...)
	if err == nil {
		r.wrote(obj)
	}
	return err
}

func (r *Client) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	err := r.Client.Patch(ctx, obj, patch, opts...)
	if err == nil {
		r.wrote(obj)
	}
	return err
}

// Delete notes the version after the object's: its deletion (or, under a
// finalizer, the update that marks it) comes after what was read. An
// object passed without a resourceVersion sends reads of its kind to the
// API server for a moment instead.
func (r *Client) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	err := r.Client.Delete(ctx, obj, opts...)
	if err == nil {
		if w := r.mark(obj); w != nil {
			if n := rv(obj.GetResourceVersion()); n > 0 {
				w.wrote(strconv.FormatUint(n+1, 10))
			} else {
				w.wrote("")
			}
		}
	}
	return err
}

func (r *Client) DeleteAllOf(ctx context.Context, obj client.Object, opts ...client.DeleteAllOfOption) error {
	err := r.Client.DeleteAllOf(ctx, obj, opts...)
	if w := r.mark(obj); w != nil {
		w.wrote("")
	}
	return err
}

func (r *Client) Status() client.SubResourceWriter { return r.SubResource("status") }

func (r *Client) SubResource(sub string) client.SubResourceClient {
	return &cachedSubResource{SubResourceClient: r.Client.SubResource(sub), r: r}
}

// cachedSubResource notes the versions its writes (status updates) make.
type cachedSubResource struct {
	client.SubResourceClient
	r *Client
}

func (s *cachedSubResource) Create(ctx context.Context, obj, sub client.Object, opts ...client.SubResourceCreateOption) error {
	err := s.SubResourceClient.Create(ctx, obj, sub, opts...)
	if err == nil {
		s.r.wrote(obj)
	}
	return err
}

func (s *cachedSubResource) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	err := s.SubResourceClient.Update(ctx, obj, opts...)
	if err == nil {
		s.r.wrote(obj)
	}
	return err
}

func (s *cachedSubResource) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	err := s.SubResourceClient.Patch(ctx, obj, patch, opts...)
	if err == nil {
		s.r.wrote(obj)
	}
	return err
}
