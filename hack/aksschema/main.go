// Command aksschema generates the property trees of the AKS api-versions
// Slipway serves, from the SDKs Microsoft generates from the AKS REST specs
// (Azure/azure-rest-api-specs, specification/containerservice): AutoRest's
// serialization mappers in the npm package @azure/arm-containerservice, one
// release per api-version, and the Python models of azure-mgmt-containerservice
// for 2022-11-01, the version az 2.45 speaks and no npm release carries.
//
// Each tree lists, for every object type reachable from the provider's
// resources, the JSON properties that api-version defines: what Slipway
// keeps from a request and returns in a response at that version.
//
//	go run ./hack/aksschema [-out DIR]
//
// It needs npm, node and Debian's azure-cli (/usr/bin/python3 and its Python
// SDK); it runs only when the sources change, and its output is committed.
package main

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/slipway-dev/slipway/internal/arm/schema"
)

// sources are the api-versions generated and where each comes from.
var sources = []struct {
	version string
	npm     string // @azure/arm-containerservice release
	python  string // azure.mgmt.containerservice models module
}{
	{version: "2022-11-01", python: "azure.mgmt.containerservice.v2022_11_01.models"},
	{version: "2023-07-01", npm: "19.3.0"},
	{version: "2023-08-01", npm: "19.4.0"},
	{version: "2023-10-01", npm: "19.6.0"},
	{version: "2023-11-01", npm: "19.7.0"},
	{version: "2024-01-01", npm: "19.8.0"},
	{version: "2024-02-01", npm: "20.0.0"},
	{version: "2024-07-01", npm: "21.1.0"},
	{version: "2024-09-01", npm: "21.3.0"},
	{version: "2025-02-01", npm: "21.6.0"},
	{version: "2025-07-01", npm: "22.3.0"},
	{version: "2025-10-01", npm: "24.1.0"},
}

// roots are the resources whose trees are kept.
var roots = []string{"ManagedCluster", "AgentPool", "MaintenanceConfiguration", "Machine"}

// model is a class as the SDKs describe it: its properties' serialized
// keys (dotted where AutoRest flattened "properties"), their types in the
// Python SDK's notation ("str", "[T]", "{T}", "T" for a class, "object"
// for free-form JSON), and whether each is read-only.
type model []struct {
	Key      string `json:"key"`
	Type     string `json:"type"`
	ReadOnly bool   `json:"ro"`
}

// dumpMappers prints AutoRest's JavaScript mappers in the models' form.
const dumpMappers = `
import * as m from %q;
const out = {};
const typeOf = (t, owner, key) => {
  switch (t.name) {
  case "Composite":
    if (t.className) return t.className;
    const name = owner + "." + key;
    out[name] = props(t.modelProperties || {}, name);
    return name;
  case "Sequence": return "[" + typeOf(t.element.type, owner, key) + "]";
  case "Dictionary": return "{" + typeOf(t.value.type, owner, key) + "}";
  case "Object": return "object";
  case "Number": return "float";
  case "Boolean": return "bool";
  case "DateTime": return "iso-8601";
  case "DateTimeRfc1123": return "rfc-1123";
  case "Date": return "date";
  case "ByteArray": return "bytearray";
  default: return "str";
  }
};
const props = (mp, owner) => Object.entries(mp).map(([k, p]) => ({
  key: p.serializedName, type: typeOf(p.type, owner, k), ro: !!p.readOnly,
}));
for (const [name, mapper] of Object.entries(m)) {
  if (mapper && mapper.type && mapper.type.name === "Composite" && mapper.type.modelProperties) {
    out[mapper.type.className || name] = props(mapper.type.modelProperties, name);
  }
}
console.log(JSON.stringify(out));
`

// dumpPython prints the Python SDK's models in the same form.
const dumpPython = `
import importlib, json, sys
mod = importlib.import_module(sys.argv[1])
out = {}
for name in dir(mod):
    cls = getattr(mod, name)
    amap = getattr(cls, "_attribute_map", None)
    if not isinstance(cls, type) or amap is None:
        continue
    validation = getattr(cls, "_validation", {}) or {}
    out[name] = [{"key": a["key"], "type": a["type"],
                  "ro": bool(validation.get(attr, {}).get("readonly"))}
                 for attr, a in amap.items()]
print(json.dumps(out))
`

func main() {
	out := flag.String("out", "internal/arm/providers/containerservice/apischema", "directory for the generated trees")
	flag.Parse()
	work, err := os.MkdirTemp("", "aksschema")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	for _, src := range sources {
		var models map[string]model
		var from string
		if src.npm != "" {
			models, err = npmModels(work, src.npm)
			from = "npm @azure/arm-containerservice@" + src.npm + " (AutoRest mappers)"
		} else {
			models, err = pythonModels(src.python)
			from = "Python " + src.python + " (AutoRest models, Debian azure-cli)"
		}
		if err != nil {
			log.Fatalf("%s: %v", src.version, err)
		}
		tree, err := build(models)
		if err != nil {
			log.Fatalf("%s: %v", src.version, err)
		}
		tree.Version, tree.Source = src.version, from
		data, err := json.MarshalIndent(tree, "", " ")
		if err != nil {
			log.Fatal(err)
		}
		path := filepath.Join(*out, src.version+".json")
		if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %d types from %s\n", path, len(tree.Types), from)
	}
}

// npmModels fetches one release of @azure/arm-containerservice and dumps
// its mappers.
func npmModels(work, release string) (map[string]model, error) {
	dir := filepath.Join(work, release)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	pack := exec.Command("npm", "pack", "--silent", "--pack-destination", dir, "@azure/arm-containerservice@"+release)
	pack.Stderr = os.Stderr
	name, err := pack.Output()
	if err != nil {
		return nil, fmt.Errorf("npm pack: %w", err)
	}
	mappers, err := extract(filepath.Join(dir, strings.TrimSpace(string(name))), dir)
	if err != nil {
		return nil, err
	}
	return dump(exec.Command("node", "--input-type=module", "-e", fmt.Sprintf(dumpMappers, mappers)))
}

// dump runs a command that prints models as JSON.
func dump(cmd *exec.Cmd) (map[string]model, error) {
	cmd.Stderr = os.Stderr
	data, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd.Path, err)
	}
	var models map[string]model
	return models, json.Unmarshal(data, &models)
}

// extract writes the package's ES module mappers to dir/mappers.mjs:
// dist/esm in newer releases, dist-esm/src in older ones.
func extract(tgz, dir string) (string, error) {
	f, err := os.Open(tgz)
	if err != nil {
		return "", err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return "", err
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return "", fmt.Errorf("%s has no ES module mappers", tgz)
		}
		if err != nil {
			return "", err
		}
		if h.Name == "package/dist/esm/models/mappers.js" || h.Name == "package/dist-esm/src/models/mappers.js" {
			data, err := io.ReadAll(tr)
			if err != nil {
				return "", err
			}
			path := filepath.Join(dir, "mappers.mjs")
			return path, os.WriteFile(path, data, 0o644)
		}
	}
}

// pythonModels dumps the models of a module of the Python SDK az uses.
func pythonModels(module string) (map[string]model, error) {
	return dump(exec.Command("/usr/bin/python3", "-c", dumpPython, module))
}

// build turns the SDK models into the tree: flattened keys
// ("properties.kubernetesVersion") become nested types
// ("ManagedCluster.properties"), and only what the roots reach is kept.
func build(models map[string]model) (*schema.Tree, error) {
	tree := &schema.Tree{Types: map[string]schema.Type{}}
	var visit func(class, as string) error
	visit = func(class, as string) error {
		if _, done := tree.Types[as]; done {
			return nil
		}
		m, ok := models[class]
		if !ok {
			return fmt.Errorf("no model %s", class)
		}
		tree.Types[as] = schema.Type{}
		for _, p := range m {
			path := splitKey(p.Key)
			owner := as
			for _, seg := range path[:len(path)-1] {
				nested := owner + "." + seg
				if _, ok := tree.Types[nested]; !ok {
					tree.Types[nested] = schema.Type{}
				}
				tree.Types[owner][seg] = schema.Prop{Type: nested}
				owner = nested
			}
			prop, elem := parseType(p.Type)
			prop.ReadOnly = p.ReadOnly
			if elem != "" {
				prop.Type = elem
				if err := visit(elem, elem); err != nil {
					return err
				}
			}
			tree.Types[owner][path[len(path)-1]] = prop
		}
		return nil
	}
	for _, r := range roots {
		if _, ok := models[r]; !ok {
			continue // Machine is newer than the oldest versions
		}
		if err := visit(r, r); err != nil {
			return nil, err
		}
	}
	return tree, nil
}

// splitKey splits a serialized key at unescaped dots.
func splitKey(key string) []string {
	const marker = "\x00"
	key = strings.ReplaceAll(key, `\.`, marker)
	parts := strings.Split(key, ".")
	for i := range parts {
		parts[i] = strings.ReplaceAll(parts[i], marker, ".")
	}
	return parts
}

// scalarKinds are the SDKs' scalar types by their JSON kind.
var scalarKinds = map[string]string{
	"int": schema.Number, "long": schema.Number, "float": schema.Number,
	"bool":     schema.Bool,
	"iso-8601": schema.Time, "rfc-1123": schema.Time, "unix-time": schema.Time,
	"date":   schema.Date,
	"base64": schema.Bytes, "bytearray": schema.Bytes,
	"str": "", "duration": "", "time": "",
}

// parseType reads "[{T}]"-style notation: the containers, outermost first,
// and the class at the bottom ("" for scalars and free-form JSON).
func parseType(t string) (schema.Prop, string) {
	var p schema.Prop
	for len(t) > 1 && (t[0] == '[' || t[0] == '{') {
		p.Containers += t[:1]
		t = t[1 : len(t)-1]
	}
	if t == "object" {
		p.Any = true
		return p, ""
	}
	if kind, ok := scalarKinds[t]; ok {
		p.Kind = kind
		return p, ""
	}
	return p, t
}
