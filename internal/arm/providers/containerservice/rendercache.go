package containerservice

import (
	"net/http"
	"strings"
	"sync"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/arm"
)

// renderCache keeps the JSON of clusters as GET answered them, keyed by
// everything the answer is made of: the api-version, and the cluster's and
// its pools' UIDs and resourceVersions. A write to any of them changes its
// resourceVersion, so a read after a write (which the front door's cache
// guarantees sees the write) misses and renders afresh: the cache can serve
// nothing stale. What a render reads beyond those objects is kept out: a
// cluster or pool in an operation (its provisioningState may be the
// operation's) and a pool not yet provisioned (its image is the catalog's
// latest) are rendered every time.
//
// Rendering is most of a GET's CPU (decoding the stored resource into the
// SDK's model, the pools' profiles, encoding); a hit is a map lookup.
type renderCache struct {
	mu      sync.Mutex
	entries map[string][]byte
}

// renderCacheSize bounds the entries: a cluster's JSON is a few KiB, and an
// entry for a resourceVersion gone by is never asked for again, so it only
// waits to be dropped.
const renderCacheSize = 1024

func (c *renderCache) get(key string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.entries[key]
	return b, ok
}

func (c *renderCache) put(key string, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string][]byte{}
	}
	for k := range c.entries {
		if len(c.entries) < renderCacheSize {
			break
		}
		delete(c.entries, k) // any: most are of versions gone by
	}
	c.entries[key] = b
}

// renderKey is the cache key of a GET of mc at the request's api-version,
// or "" when the answer depends on more than the objects (see renderCache).
func renderKey(r *http.Request, mc *slipwayv1.ManagedCluster, pools []slipwayv1.AgentPool) string {
	if busyWith(mc.Spec.Operation, mc.Status.CompletedOperation) != "" || mc.ResourceVersion == "" {
		return ""
	}
	var k strings.Builder
	k.WriteString(arm.APIVersion(r))
	k.WriteString("|" + string(mc.UID) + "@" + mc.ResourceVersion)
	for i := range pools {
		if pools[i].Status.NodeImageVersion == "" || pools[i].ResourceVersion == "" ||
			busyWith(pools[i].Spec.Operation, pools[i].Status.CompletedOperation) != "" {
			return ""
		}
		k.WriteString("|" + string(pools[i].UID) + "@" + pools[i].ResourceVersion)
	}
	return k.String()
}
