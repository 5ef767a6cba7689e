package containerservice

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"

	"github.com/slipway-dev/slipway/internal/arm/providers/containerservice/apischema"
	"github.com/slipway-dev/slipway/internal/arm/schema"
)

// TestEveryPropertyRoundTrips: for every api-version generated, a resource
// holding every writable property that version defines goes through what
// Slipway stores (the SDK's model plus the unmodeled JSON) and comes back,
// in that version's shape, whole and unchanged.
func TestEveryPropertyRoundTrips(t *testing.T) {
	models := map[string]func() any{
		typeCluster:     func() any { return &armcontainerservice.ManagedCluster{} },
		typePool:        func() any { return &armcontainerservice.AgentPool{} },
		typeMaintenance: func() any { return &armcontainerservice.MaintenanceConfiguration{} },
	}
	for _, v := range apischema.Set.Versions() {
		tree := apischema.Set.Exact(v)
		for typ, newModel := range models {
			t.Run(v+"/"+typ, func(t *testing.T) {
				want, _ := schema.Generic(synthesize(tree, typ, map[string]bool{}))
				count := countLeaves(want)
				body, _ := json.Marshal(want)
				r := httptest.NewRequest(http.MethodPut, "/?api-version="+v, nil)

				// What a PUT stores: the model, and the rest beside it.
				doc, err := readVersioned(r, body, typ)
				if err != nil {
					t.Fatal(err)
				}
				model := newModel()
				if err := decodeModel(doc, model); err != nil {
					t.Fatalf("the SDK's model refuses a %s body: %v", v, err)
				}
				unmodeled := unmodeledOf(doc, typ)

				// What a GET returns: the model with the rest laid over it.
				view, err := schema.Generic(model)
				if err != nil {
					t.Fatal(err)
				}
				schema.Overlay(view, unmodeled)
				w := httptest.NewRecorder()
				if err := respond(w, r, http.StatusOK, typ, view); err != nil {
					t.Fatal(err)
				}
				got, _ := schema.Decode(w.Body.Bytes())
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%d properties sent; these differ after the round trip:\n%s", count, diff("", want, got))
				}
			})
		}
	}
}

// TestOlderVersionsLoseNothing: a cluster of the newest version, read and
// written back by a client of the oldest (az 2.45, 2022-11-01), keeps what
// only the newer version defines. (Its pools keep theirs in their own
// objects: a cluster PUT carries them by name, which the e2e test covers.)
func TestOlderVersionsLoseNothing(t *testing.T) {
	versions := apischema.Set.Versions()
	newest, oldest := apischema.Set.Exact(versions[len(versions)-1]), apischema.Set.Exact(versions[0])
	synth := synthesize(newest, typeCluster, map[string]bool{})
	delete(synth["properties"].(map[string]any), "agentPoolProfiles")
	stored, _ := schema.Generic(synth)
	want, _ := schema.Generic(stored)

	// The old client reads the cluster in its shape and sends it back.
	r := httptest.NewRequest(http.MethodGet, "/?api-version="+oldest.Version, nil)
	w := httptest.NewRecorder()
	if err := respond(w, r, http.StatusOK, typeCluster, stored); err != nil {
		t.Fatal(err)
	}
	read, err := readVersioned(r, w.Body.Bytes(), typeCluster)
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(any(read), want) {
		t.Fatal("the oldest version defines all the newest does: nothing to test")
	}
	carry(r, read, stored, typeCluster)
	if !reflect.DeepEqual(any(read), want) {
		t.Fatalf("a write at %s lost what it cannot say:\n%s", oldest.Version, diff("", want, read))
	}
}

// synthesize makes an object of type typ with every writable property set:
// one element in each list, one key in each map, a value of the right kind
// in each scalar. A type already on the path is left out (types nest).
func synthesize(tree *schema.Tree, typ string, path map[string]bool) map[string]any {
	path[typ] = true
	defer delete(path, typ)
	out := map[string]any{}
	for name, p := range tree.Types[typ] {
		if p.ReadOnly || p.Type != "" && path[p.Type] {
			continue
		}
		var v any
		switch {
		case p.Any:
			v = map[string]any{"free": "form"}
		case p.Type != "":
			v = synthesize(tree, p.Type, path)
		case p.Kind == schema.Number:
			v = 3
		case p.Kind == schema.Bool:
			v = true
		case p.Kind == schema.Time:
			v = "2025-01-02T03:04:05Z"
		case p.Kind == schema.Date:
			v = "2025-01-02"
		case p.Kind == schema.Bytes:
			v = "Ynl0ZXM="
		default:
			v = "value-of-" + name
		}
		for i := len(p.Containers) - 1; i >= 0; i-- {
			if p.Containers[i] == '[' {
				v = []any{v}
			} else {
				v = map[string]any{"key": v}
			}
		}
		out[name] = v
	}
	return out
}

func countLeaves(v any) int {
	switch v := v.(type) {
	case map[string]any:
		n := 0
		for _, e := range v {
			n += countLeaves(e)
		}
		return n
	case []any:
		n := 0
		for _, e := range v {
			n += countLeaves(e)
		}
		return n
	}
	return 1
}

// diff lists the paths where two generic documents differ.
func diff(at string, want, got any) string {
	wm, wok := want.(map[string]any)
	gm, gok := got.(map[string]any)
	if wok && gok {
		keys := map[string]bool{}
		for k := range wm {
			keys[k] = true
		}
		for k := range gm {
			keys[k] = true
		}
		var sorted []string
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		out := ""
		for _, k := range sorted {
			out += diff(at+"."+k, wm[k], gm[k])
		}
		return out
	}
	wl, wok := want.([]any)
	gl, gok := got.([]any)
	if wok && gok && len(wl) == len(gl) {
		out := ""
		for i := range wl {
			out += diff(fmt.Sprintf("%s[%d]", at, i), wl[i], gl[i])
		}
		return out
	}
	if reflect.DeepEqual(want, got) {
		return ""
	}
	w, _ := json.Marshal(want)
	g, _ := json.Marshal(got)
	return fmt.Sprintf("  %s: sent %s, got %s\n", at, w, g)
}

// BenchmarkRespond is the cost of answering in a client's api-version: a
// cluster holding every property of the newest version, pruned to the
// newest and to the oldest, against writing the JSON as it is.
func BenchmarkRespond(b *testing.B) {
	versions := apischema.Set.Versions()
	cluster, _ := schema.Generic(synthesize(apischema.Set.Exact(versions[len(versions)-1]), typeCluster, map[string]bool{}))
	for _, v := range []string{"", versions[0], versions[len(versions)-1]} {
		name := v
		if name == "" {
			name = "unversioned"
		}
		b.Run(name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "/?api-version="+v, nil)
			for b.Loop() {
				w := httptest.NewRecorder()
				if v == "" {
					json.NewEncoder(w).Encode(cluster)
					continue
				}
				if err := respond(w, r, http.StatusOK, typeCluster, cluster); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestSDKShapedNeedsNoPruning: a view in the SDK's shape, written as it is
// at the SDK's api-version, is what pruning it would give.
func TestSDKShapedNeedsNoPruning(t *testing.T) {
	doc, _ := schema.Generic(synthesize(apischema.SDK, typeCluster, map[string]bool{}))
	var model armcontainerservice.ManagedCluster
	if err := decodeModel(doc, &model); err != nil {
		t.Fatal(err)
	}
	view := &clusterView{ManagedCluster: &model}
	fast, err := inShape(apischema.SDK, typeCluster, view)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fast.(*clusterView); !ok {
		t.Fatalf("the SDK-shaped view took the slow path: %T", fast)
	}
	got, _ := schema.Generic(fast)
	want, _ := schema.Generic(view)
	apischema.SDK.Prune(want, typeCluster, false)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("written as it is, the view differs from its pruned self:\n%s", diff("", want, got))
	}
}
