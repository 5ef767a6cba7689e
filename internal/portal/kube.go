package portal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// Kubernetes objects are read and written through the cluster's own API
// server, with the credential ARM gives the principal: the cluster-admin
// one if its role may list it, else the cluster-user one. So Kubernetes
// RBAC and admission (Azure Policy's among them) apply as they do to
// kubectl, and a principal with neither is told which role it lacks.

// kubeAccess is a principal's way into one cluster.
type kubeAccess struct {
	// as says which credential: "cluster-admin" or "cluster-user".
	as      string
	http    *http.Client
	host    string
	dynamic dynamic.Interface
	mapper  *restmapper.DeferredDiscoveryRESTMapper
	made    time.Time
}

// kubeAccessTTL bounds how long a credential is reused: a role taken away
// in ARM stops reaching the cluster through the portal within it.
const kubeAccessTTL = 2 * time.Minute

var errNoClusterRole = errors.New("your role on this cluster lets you list neither its admin nor its user credential (Microsoft.ContainerService/managedClusters/listClusterUserCredential/action): ask for the Azure Kubernetes Service Cluster User Role")

type kubeCache struct {
	mu  sync.Mutex
	all map[string]*kubeAccess
}

// kube is the session's access to a cluster, made or reused.
func (p *Portal) kube(ctx context.Context, ss *session, group, name string) (*kubeAccess, error) {
	key := ss.id + "/" + strings.ToLower(group+"/"+name)
	p.kubes.mu.Lock()
	ka := p.kubes.all[key]
	p.kubes.mu.Unlock()
	if ka != nil && time.Since(ka.made) < kubeAccessTTL {
		return ka, nil
	}
	clusters, err := armcontainerservice.NewManagedClustersClient(p.o.SubscriptionID, p.credential(ss), p.clientOptions())
	if err != nil {
		return nil, err
	}
	as := "cluster-admin"
	var kubeconfig []byte
	admin, err := clusters.ListClusterAdminCredentials(ctx, group, name, nil)
	if err == nil && len(admin.Kubeconfigs) > 0 {
		kubeconfig = admin.Kubeconfigs[0].Value
	} else if err != nil && !forbidden(err) {
		return nil, errors.New(armMessage(err))
	} else {
		as = "cluster-user"
		user, err := clusters.ListClusterUserCredentials(ctx, group, name, nil)
		if forbidden(err) {
			return nil, errNoClusterRole
		}
		if err != nil {
			return nil, errors.New(armMessage(err))
		}
		if len(user.Kubeconfigs) == 0 {
			return nil, errNoClusterRole
		}
		kubeconfig = user.Kubeconfigs[0].Value
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("the cluster's %s kubeconfig: %w", as, err)
	}
	cfg.UserAgent = "slipway-portal"
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	disc, err := discovery.NewDiscoveryClientForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	ka = &kubeAccess{as: as, http: hc, host: strings.TrimSuffix(cfg.Host, "/"), dynamic: dyn,
		mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc)), made: time.Now()}
	p.kubes.mu.Lock()
	// Entries of ended sessions go with the expired ones.
	for k, old := range p.kubes.all {
		if time.Since(old.made) >= kubeAccessTTL {
			delete(p.kubes.all, k)
		}
	}
	p.kubes.all[key] = ka
	p.kubes.mu.Unlock()
	return ka, nil
}

// resourcePath is the API path of a resource's collection, or of one
// object when name is set.
func resourcePath(gvr schema.GroupVersionResource, namespace, name string) string {
	p := "/apis/" + gvr.Group + "/" + gvr.Version
	if gvr.Group == "" {
		p = "/api/" + gvr.Version
	}
	if namespace != "" {
		p += "/namespaces/" + url.PathEscape(namespace)
	}
	p += "/" + gvr.Resource
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// apiError is the API server's refusal, in its words.
type apiError struct {
	Code    int
	Message string
}

func (e *apiError) Error() string { return e.Message }

func (ka *kubeAccess) get(ctx context.Context, path string, query url.Values, accept string, into any) error {
	u := ka.host + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", accept)
	resp, err := ka.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		st := &metav1.Status{}
		if json.Unmarshal(b, st) == nil && st.Message != "" {
			return &apiError{Code: resp.StatusCode, Message: st.Message}
		}
		return &apiError{Code: resp.StatusCode, Message: fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(b)))}
	}
	return json.Unmarshal(b, into)
}

// tableAccept asks for the API server's Table: the columns kubectl get
// prints, for every resource (a CRD's additionalPrinterColumns too).
const tableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"

// listOptions are a list page's filters.
type listOptions struct {
	namespace, labelSelector, fieldSelector, search, cont string
	limit                                                 int64
	// objects asks for whole objects in the rows, cells for none (by
	// default each row has its object's metadata).
	objects, cells bool
}

// table lists a page of a resource as a Table (at most opts.limit rows;
// the API server pages with continue tokens, so a list of 5,000 pods
// costs one page). A search by name filters the page.
func (ka *kubeAccess) table(ctx context.Context, gvr schema.GroupVersionResource, opts listOptions) (*metav1.Table, error) {
	q := url.Values{}
	q.Set("limit", fmt.Sprint(opts.limit))
	if opts.labelSelector != "" {
		q.Set("labelSelector", opts.labelSelector)
	}
	if opts.fieldSelector != "" {
		q.Set("fieldSelector", opts.fieldSelector)
	}
	if opts.cont != "" {
		q.Set("continue", opts.cont)
	}
	switch {
	case opts.objects:
		q.Set("includeObject", "Object")
	case opts.cells:
		q.Set("includeObject", "None")
	}
	t := &metav1.Table{}
	if err := ka.get(ctx, resourcePath(gvr, opts.namespace, ""), q, tableAccept, t); err != nil {
		return nil, err
	}
	if opts.search != "" {
		rows := t.Rows[:0]
		for _, row := range t.Rows {
			if len(row.Cells) > 0 && strings.Contains(fmt.Sprint(row.Cells[0]), opts.search) {
				rows = append(rows, row)
			}
		}
		t.Rows = rows
	}
	return t, nil
}

// object reads one object.
func (ka *kubeAccess) object(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	if err := ka.get(ctx, resourcePath(gvr, namespace, name), nil, "application/json", &u.Object); err != nil {
		return nil, err
	}
	return u, nil
}

// resolve finds a kind's resource and scope.
func (ka *kubeAccess) resolve(gvk schema.GroupVersionKind) (schema.GroupVersionResource, bool, error) {
	m, err := ka.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		ka.mapper.Reset()
		if m, err = ka.mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return schema.GroupVersionResource{}, false, fmt.Errorf("the cluster does not serve %s: %w", gvk, err)
		}
	}
	return m.Resource, m.Scope.Name() == "namespace", nil
}

// namespaced says whether a resource is namespaced.
func (ka *kubeAccess) namespaced(gvr schema.GroupVersionResource) (bool, error) {
	gvk, err := ka.mapper.KindFor(gvr)
	if err != nil {
		ka.mapper.Reset()
		if gvk, err = ka.mapper.KindFor(gvr); err != nil {
			return false, fmt.Errorf("the cluster does not serve %s: %w", gvr, err)
		}
	}
	_, ns, err := ka.resolve(gvk)
	return ns, err
}

// apply writes YAML documents as kubectl would: an object with a
// resourceVersion (one edited from its YAML view) replaces what is there
// if nothing changed it since; one without is applied server-side, as
// `kubectl apply --server-side --force-conflicts`. It returns what it
// wrote, one line each.
func (ka *kubeAccess) apply(ctx context.Context, text, defaultNamespace string) ([]string, error) {
	var done []string
	for _, doc := range strings.Split(text, "\n---") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			return done, fmt.Errorf("not YAML: %w", err)
		}
		if len(u.Object) == 0 {
			continue
		}
		gvk := u.GroupVersionKind()
		if gvk.Kind == "" || gvk.Version == "" || u.GetName() == "" {
			return done, errors.New("each document needs apiVersion, kind and metadata.name")
		}
		gvr, namespaced, err := ka.resolve(gvk)
		if err != nil {
			return done, err
		}
		var ri dynamic.ResourceInterface = ka.dynamic.Resource(gvr)
		if namespaced {
			if u.GetNamespace() == "" {
				u.SetNamespace(defaultNamespace)
			}
			ri = ka.dynamic.Resource(gvr).Namespace(u.GetNamespace())
		}
		u.SetManagedFields(nil)
		verb := "applied"
		if u.GetResourceVersion() != "" {
			_, err = ri.Update(ctx, u, metav1.UpdateOptions{FieldManager: fieldManager})
			verb = "updated"
		} else {
			var b []byte
			if b, err = json.Marshal(u.Object); err == nil {
				_, err = ri.Patch(ctx, u.GetName(), types.ApplyPatchType, b, metav1.PatchOptions{FieldManager: fieldManager, Force: ptr.To(true)})
			}
		}
		if err != nil {
			return done, err
		}
		done = append(done, fmt.Sprintf("%s/%s %s", strings.ToLower(gvk.Kind), u.GetName(), verb))
	}
	if len(done) == 0 {
		return nil, errors.New("nothing to apply")
	}
	return done, nil
}

const fieldManager = "slipway-portal"

// remove deletes one object.
func (ka *kubeAccess) remove(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) error {
	ri := ka.dynamic.Resource(gvr)
	if namespace != "" {
		return ri.Namespace(namespace).Delete(ctx, name, metav1.DeleteOptions{})
	}
	return ri.Delete(ctx, name, metav1.DeleteOptions{})
}

// As is the credential in use: cluster-admin or cluster-user.
func (ka *kubeAccess) As() string { return ka.as }
