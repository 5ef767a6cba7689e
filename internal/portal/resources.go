package portal

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// kind is a resource in the portal's menu.
type kind struct {
	Title string
	GVR   schema.GroupVersionResource
}

// Path is the kind's part of a list URL: the core group is "core".
func (k kind) Path() string {
	g := k.GVR.Group
	if g == "" {
		g = "core"
	}
	return g + "/" + k.GVR.Version + "/" + k.GVR.Resource
}

type section struct {
	Title string
	Kinds []kind
}

func gvr(group, version, resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: group, Version: version, Resource: resource}
}

// sections are the Kubernetes resources as the Azure portal groups them.
var sections = []section{
	{"Namespaces", []kind{{"Namespaces", gvr("", "v1", "namespaces")}}},
	{"Workloads", []kind{
		{"Deployments", gvr("apps", "v1", "deployments")}, {"Pods", gvr("", "v1", "pods")},
		{"Replica sets", gvr("apps", "v1", "replicasets")}, {"Stateful sets", gvr("apps", "v1", "statefulsets")},
		{"Daemon sets", gvr("apps", "v1", "daemonsets")}, {"Jobs", gvr("batch", "v1", "jobs")}, {"Cron jobs", gvr("batch", "v1", "cronjobs")},
	}},
	{"Services and ingresses", []kind{{"Services", gvr("", "v1", "services")}, {"Ingresses", gvr("networking.k8s.io", "v1", "ingresses")}}},
	{"Storage", []kind{
		{"Persistent volume claims", gvr("", "v1", "persistentvolumeclaims")}, {"Persistent volumes", gvr("", "v1", "persistentvolumes")},
		{"Storage classes", gvr("storage.k8s.io", "v1", "storageclasses")},
	}},
	{"Configuration", []kind{{"Config maps", gvr("", "v1", "configmaps")}, {"Secrets", gvr("", "v1", "secrets")}}},
	{"Cluster", []kind{{"Nodes", gvr("", "v1", "nodes")}, {"Events", gvr("", "v1", "events")},
		{"Custom resources", gvr("apiextensions.k8s.io", "v1", "customresourcedefinitions")}}},
}

// titleOf is a resource's menu title, or its name.
func titleOf(g schema.GroupVersionResource) string {
	for _, s := range sections {
		for _, k := range s.Kinds {
			if k.GVR == g {
				return k.Title
			}
		}
	}
	return g.Resource
}

// gvrOf reads a resource from a URL's {g}/{v}/{r}.
func gvrOf(r *http.Request) schema.GroupVersionResource {
	g := r.PathValue("g")
	if g == "core" {
		g = ""
	}
	return gvr(g, r.PathValue("v"), r.PathValue("r"))
}

// row is one object of a list page.
type row struct {
	Name, Namespace, URL string
	Cells                []string
}

type listData struct {
	*clusterData
	Kind                     kind
	Namespaced               bool
	Columns                  []string
	Rows                     []row
	Namespace, Label, Search string
	Namespaces               []string
	Next, FragmentURL        string
}

// pageSize bounds a list page: a cluster of 5,000 pods costs one page of
// them per view and per refresh.
const pageSize = 100

// list is a page of one resource's objects, with kubectl's columns,
// filtered by namespace, label selector and name.
func (p *Portal) list(w http.ResponseWriter, r *http.Request, ss *session) {
	ctx := r.Context()
	group, name := r.PathValue("group"), r.PathValue("name")
	res := gvrOf(r)
	k := kind{Title: titleOf(res), GVR: res}
	q := r.URL.Query()
	d := &listData{clusterData: &clusterData{Group: group, Name: name, Sections: sections}, Kind: k,
		Namespace: q.Get("namespace"), Label: q.Get("label"), Search: q.Get("q")}
	pg := &page{Title: k.Title + " · " + name, Session: ss, Data: d,
		Crumbs: []crumb{{"Subscription", "/portal/"}, {group + "/" + name, clusterURL(group, name)}, {k.Title, ""}}}
	ka, err := p.kube(ctx, ss, group, name)
	if err != nil {
		pg.Error = err.Error()
		p.render(w, r, "list", pg)
		return
	}
	if d.Namespaced, err = ka.namespaced(res); err != nil {
		pg.Error = err.Error()
		p.render(w, r, "list", pg)
		return
	}
	if d.Namespaced && q.Get("fragment") == "" {
		if t, err := ka.table(ctx, gvr("", "v1", "namespaces"), listOptions{limit: 500, cells: true}); err == nil {
			for _, row := range t.Rows {
				d.Namespaces = append(d.Namespaces, fmt.Sprint(row.Cells[0]))
			}
		}
	}
	opts := listOptions{labelSelector: d.Label, search: d.Search, cont: q.Get("continue"), limit: pageSize}
	if d.Namespaced {
		opts.namespace = d.Namespace
	}
	if f := q.Get("field"); f != "" {
		opts.fieldSelector = f
	}
	nodes := res == gvr("", "v1", "nodes")
	opts.objects = nodes
	t, err := ka.table(ctx, res, opts)
	if err != nil {
		pg.Error = err.Error()
		p.render(w, r, "list", pg)
		return
	}
	base := clusterURL(group, name) + "/k8s/" + k.Path()
	d.Columns, d.Rows = tableRows(t, base, d.Namespaced)
	if nodes {
		d.Columns = append(d.Columns, nodeColumns(t, d.Rows)...)
	}
	keep := url.Values{}
	for _, key := range []string{"namespace", "label", "q", "field"} {
		if v := q.Get(key); v != "" {
			keep.Set(key, v)
		}
	}
	if t.Continue != "" {
		next := url.Values{}
		for key, v := range keep {
			next[key] = v
		}
		next.Set("continue", t.Continue)
		d.Next = base + "?" + next.Encode()
	}
	fq := url.Values{}
	for key, v := range r.URL.Query() {
		fq[key] = v
	}
	fq.Set("fragment", "rows")
	d.FragmentURL = base + "?" + fq.Encode()
	p.render(w, r, "list", pg)
}

// tableRows turns a Table into rows linking to each object (the name
// column first, as kubectl prints it; priority-0 columns only).
func tableRows(t *metav1.Table, base string, namespaced bool) ([]string, []row) {
	var cols []int
	var names []string
	if namespaced {
		names = append(names, "Namespace")
	}
	for i, c := range t.ColumnDefinitions {
		if c.Priority == 0 {
			cols = append(cols, i)
			names = append(names, c.Name)
		}
	}
	var rows []row
	for _, tr := range t.Rows {
		var meta metav1.PartialObjectMetadata
		_ = decodeRowObject(tr, &meta)
		ns := meta.Namespace
		rw := row{Name: meta.Name, Namespace: ns}
		if namespaced {
			rw.Cells = append(rw.Cells, ns)
		} else {
			ns = "_"
		}
		rw.URL = base + "/" + url.PathEscape(ns) + "/" + url.PathEscape(meta.Name)
		for _, i := range cols {
			if i < len(tr.Cells) {
				rw.Cells = append(rw.Cells, cell(tr.Cells[i]))
			}
		}
		rows = append(rows, rw)
	}
	return names, rows
}

// nodeColumns adds to the nodes' rows what an AKS user looks for that
// kubectl get nodes does not show: the node image, kernel, taints and
// whether the node is cordoned.
func nodeColumns(t *metav1.Table, rows []row) []string {
	for i, tr := range t.Rows {
		var n corev1.Node
		if decodeRowObject(tr, &n) != nil || i >= len(rows) {
			continue
		}
		var taints []string
		for _, taint := range n.Spec.Taints {
			taints = append(taints, taint.ToString())
		}
		cordoned := "no"
		if n.Spec.Unschedulable {
			cordoned = "yes"
		}
		rows[i].Cells = append(rows[i].Cells, n.Labels["kubernetes.azure.com/node-image-version"], n.Status.NodeInfo.KernelVersion, strings.Join(taints, ", "), cordoned)
	}
	return []string{"Node image", "Kernel", "Taints", "Cordoned"}
}

func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

func decodeRowObject(tr metav1.TableRow, into any) error {
	if len(tr.Object.Raw) == 0 {
		return errors.New("row without object")
	}
	return json.Unmarshal(tr.Object.Raw, into)
}

func columnIndex(t *metav1.Table, name string) int {
	for i, c := range t.ColumnDefinitions {
		if c.Name == name {
			return i
		}
	}
	return -1
}

type detailData struct {
	*clusterData
	Kind                kind
	Namespace, Object   string
	YAML                string
	Hidden, Revealed    bool
	Pods                *listData
	Related             string
	CRD                 *kind
	DeleteURL, ApplyURL string
}

// detail is one object: its YAML (a Secret's values hidden until asked),
// the pods it runs or that run on it, and delete.
func (p *Portal) detail(w http.ResponseWriter, r *http.Request, ss *session) {
	ctx := r.Context()
	group, name := r.PathValue("group"), r.PathValue("name")
	res := gvrOf(r)
	ns, obj := r.PathValue("ns"), r.PathValue("obj")
	if ns == "_" {
		ns = ""
	}
	k := kind{Title: titleOf(res), GVR: res}
	base := clusterURL(group, name) + "/k8s/" + k.Path()
	d := &detailData{clusterData: &clusterData{Group: group, Name: name, Sections: sections}, Kind: k, Namespace: ns, Object: obj,
		DeleteURL: base + "/" + url.PathEscape(r.PathValue("ns")) + "/" + url.PathEscape(obj) + "/delete", ApplyURL: clusterURL(group, name) + "/apply"}
	pg := &page{Title: obj + " · " + k.Title, Session: ss, Data: d,
		Crumbs: []crumb{{"Subscription", "/portal/"}, {group + "/" + name, clusterURL(group, name)}, {k.Title, base}, {obj, ""}}}
	ka, err := p.kube(ctx, ss, group, name)
	if err != nil {
		pg.Error = err.Error()
		p.render(w, r, "detail", pg)
		return
	}
	u, err := ka.object(ctx, res, ns, obj)
	if err != nil {
		pg.Error = err.Error()
		w.WriteHeader(http.StatusNotFound)
		p.render(w, r, "detail", pg)
		return
	}
	unstructured.RemoveNestedField(u.Object, "metadata", "managedFields")
	if u.GetKind() == "Secret" {
		d.Hidden = true
		d.Revealed = r.URL.Query().Get("reveal") == "1"
		if !d.Revealed {
			for _, field := range []string{"data", "stringData"} {
				if m, ok, _ := unstructured.NestedMap(u.Object, field); ok {
					for key := range m {
						m[key] = "(hidden)"
					}
					_ = unstructured.SetNestedMap(u.Object, m, field)
				}
			}
		}
	}
	b, err := yaml.Marshal(u.Object)
	if err != nil {
		pg.Error = err.Error()
	}
	d.YAML = string(b)
	// The pods of a workload, or on a node.
	podsOf := func(opts listOptions, title string) {
		t, err := ka.table(ctx, gvr("", "v1", "pods"), opts)
		if err != nil {
			return
		}
		pl := &listData{Kind: kind{Title: "Pods", GVR: gvr("", "v1", "pods")}, Namespaced: true}
		pl.Columns, pl.Rows = tableRows(t, clusterURL(group, name)+"/k8s/core/v1/pods", true)
		d.Pods, d.Related = pl, title
	}
	if sel, ok, _ := unstructured.NestedStringMap(u.Object, "spec", "selector", "matchLabels"); ok && len(sel) > 0 && u.GetKind() != "Service" {
		podsOf(listOptions{namespace: ns, labelSelector: metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: sel}), limit: pageSize}, "Pods")
	} else if sel, ok, _ := unstructured.NestedStringMap(u.Object, "spec", "selector"); ok && u.GetKind() == "Service" && len(sel) > 0 {
		podsOf(listOptions{namespace: ns, labelSelector: metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: sel}), limit: pageSize}, "Pods behind the service")
	} else if u.GetKind() == "Node" {
		podsOf(listOptions{fieldSelector: "spec.nodeName=" + obj, limit: pageSize}, "Pods on the node")
	}
	if u.GetKind() == "CustomResourceDefinition" {
		g, _, _ := unstructured.NestedString(u.Object, "spec", "group")
		plural, _, _ := unstructured.NestedString(u.Object, "spec", "names", "plural")
		versions, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
		for _, v := range versions {
			if m, ok := v.(map[string]any); ok && m["storage"] == true {
				crd := kind{Title: plural, GVR: gvr(g, fmt.Sprint(m["name"]), plural)}
				d.CRD = &crd
			}
		}
	}
	p.render(w, r, "detail", pg)
}

// applyPage is the YAML editor: Create → Apply a YAML.
func (p *Portal) applyPage(w http.ResponseWriter, r *http.Request, ss *session) {
	group, name := r.PathValue("group"), r.PathValue("name")
	d := &detailData{clusterData: &clusterData{Group: group, Name: name, Sections: sections}, ApplyURL: clusterURL(group, name) + "/apply",
		Namespace: "default", YAML: r.URL.Query().Get("yaml")}
	p.render(w, r, "apply", &page{Title: "Apply a YAML · " + name, Session: ss, Data: d,
		Crumbs: []crumb{{"Subscription", "/portal/"}, {group + "/" + name, clusterURL(group, name)}, {"Apply a YAML", ""}}})
}

// apply applies the editor's YAML and shows the API server's answer.
func (p *Portal) apply(w http.ResponseWriter, r *http.Request, ss *session) {
	group, name := r.PathValue("group"), r.PathValue("name")
	r.Body = http.MaxBytesReader(w, r.Body, 2<<20)
	text := r.PostFormValue("yaml")
	ns := strings.TrimSpace(r.PostFormValue("namespace"))
	if ns == "" {
		ns = "default"
	}
	d := &detailData{clusterData: &clusterData{Group: group, Name: name, Sections: sections}, ApplyURL: clusterURL(group, name) + "/apply", Namespace: ns, YAML: text}
	pg := &page{Title: "Apply a YAML · " + name, Session: ss, Data: d,
		Crumbs: []crumb{{"Subscription", "/portal/"}, {group + "/" + name, clusterURL(group, name)}, {"Apply a YAML", ""}}}
	ka, err := p.kube(r.Context(), ss, group, name)
	if err == nil {
		var done []string
		done, err = ka.apply(r.Context(), text, ns)
		pg.Message = strings.Join(done, "; ")
	}
	if err != nil {
		pg.Error = err.Error()
		w.WriteHeader(http.StatusUnprocessableEntity)
	}
	p.render(w, r, "apply", pg)
}

// deleteObject deletes one object (the page asked for confirmation).
func (p *Portal) deleteObject(w http.ResponseWriter, r *http.Request, ss *session) {
	group, name := r.PathValue("group"), r.PathValue("name")
	res := gvrOf(r)
	ns, obj := r.PathValue("ns"), r.PathValue("obj")
	if ns == "_" {
		ns = ""
	}
	dest := clusterURL(group, name) + "/k8s/" + kind{GVR: res}.Path()
	ka, err := p.kube(r.Context(), ss, group, name)
	if err == nil {
		err = ka.remove(r.Context(), res, ns, obj)
	}
	back(w, r, dest, fmt.Sprintf("Deleted %s %s.", strings.TrimSuffix(res.Resource, "s"), obj), err)
}
