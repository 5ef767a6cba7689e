// Package schema knows which JSON properties each api-version of a resource
// provider defines, as trees generated from the provider's REST specs. The
// ARM core answers in the shape of the request's api-version with them: a
// request keeps only what its version defines, and a response carries only
// what the client's version can read. A provider also stores what its
// versions define beyond its Go models, as JSON, and returns it as given.
package schema

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Prop is one property of an object type.
type Prop struct {
	// Type is the object type of the property's value, or of the elements
	// of its containers; "" for strings, numbers and booleans.
	Type string `json:"t,omitempty"`
	// Containers wrap the value, outermost first: "[" a list, "{" a map
	// with string keys ("{[" is a map of lists).
	Containers string `json:"c,omitempty"`
	// ReadOnly properties are set by the service; a request's are ignored.
	ReadOnly bool `json:"r,omitempty"`
	// Any is free-form JSON, kept whole.
	Any bool `json:"a,omitempty"`
	// Kind is a scalar's JSON kind: "" a string, or one of the kinds below.
	Kind string `json:"k,omitempty"`
}

// The kinds of scalars other than strings.
const (
	Number = "n"
	Bool   = "b"
	// Time is a date and time, Date a date alone, both written as strings.
	Time = "t"
	Date = "d"
	// Bytes are base64 in a string.
	Bytes = "y"
)

// Type is an object type: its properties by JSON name.
type Type map[string]Prop

// Tree is what one api-version defines.
type Tree struct {
	Version string `json:"version"`
	// Source says where the tree was generated from.
	Source string          `json:"source"`
	Types  map[string]Type `json:"types"`
}

// Set is a provider's trees, one per api-version generated.
type Set struct {
	trees []*Tree // by version, oldest first
	union *Tree
}

// Load reads the trees in dir of fsys, one JSON file each.
func Load(fsys fs.FS, dir string) (*Set, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	s := &Set{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		t := &Tree{}
		if err := json.Unmarshal(data, t); err != nil {
			return nil, fmt.Errorf("schema %s: %w", e.Name(), err)
		}
		s.trees = append(s.trees, t)
	}
	if len(s.trees) == 0 {
		return nil, fmt.Errorf("no schemas in %s", dir)
	}
	slices.SortFunc(s.trees, func(a, b *Tree) int { return strings.Compare(a.Version, b.Version) })
	s.unite()
	return s, nil
}

// unite makes the union of the trees: every property some version
// defines, writable if some version lets a client write it. Types keep
// their names from version to version (the specs' class names), so they
// merge by name; where a property's class changed between versions, the
// newest class also takes the older one's properties.
func (s *Set) unite() {
	u := &Tree{Version: "union", Types: map[string]Type{}}
	type alias struct{ into, from string }
	var aliases []alias
	for i := len(s.trees) - 1; i >= 0; i-- {
		for name, typ := range s.trees[i].Types {
			merged := u.Types[name]
			if merged == nil {
				merged = Type{}
				u.Types[name] = merged
			}
			for k, p := range typ {
				have, ok := merged[k]
				if !ok {
					merged[k] = p
					continue
				}
				have.ReadOnly = have.ReadOnly && p.ReadOnly
				merged[k] = have
				if have.Type != "" && p.Type != "" && have.Type != p.Type {
					aliases = append(aliases, alias{into: have.Type, from: p.Type})
				}
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for _, a := range aliases {
			into := u.Types[a.into]
			for k, p := range u.Types[a.from] {
				have, ok := into[k]
				switch {
				case !ok:
					into[k] = p
					changed = true
				case have.ReadOnly && !p.ReadOnly:
					have.ReadOnly = false
					into[k] = have
					changed = true
				}
			}
		}
	}
	s.union = u
}

// Union is what any version defines.
func (s *Set) Union() *Tree { return s.union }

// For is the tree of an api-version: its own, else the oldest generated
// after it. Versions only add properties, so the later tree keeps all a
// client of the version can send, and what it adds a client ignores.
func (s *Set) For(version string) *Tree {
	version = strings.TrimSuffix(version, "-preview")
	for _, t := range s.trees {
		if t.Version >= version {
			return t
		}
	}
	return s.trees[len(s.trees)-1]
}

// Exact is the tree generated for version, or nil.
func (s *Set) Exact(version string) *Tree {
	for _, t := range s.trees {
		if t.Version == version {
			return t
		}
	}
	return nil
}

// Versions lists the versions generated.
func (s *Set) Versions() []string {
	var out []string
	for _, t := range s.trees {
		out = append(out, t.Version)
	}
	return out
}

// Extend adds a property to a type of every tree: a provider's own
// addition to the API, returned at every api-version.
func (s *Set) Extend(typ, name string, p Prop) {
	for _, t := range append(slices.Clone(s.trees), s.union) {
		if t.Types[typ] != nil {
			t.Types[typ][name] = p
		}
	}
}

// Decode turns JSON into the generic form the tree works on.
func Decode(data []byte) (any, error) {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// Generic is v's JSON in generic form.
func Generic(v any) (any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return Decode(data)
}

// Prune removes from v, an object of type typ, every property the tree
// does not define, and with readOnly the read-only ones too; in place.
func (t *Tree) Prune(v any, typ string, readOnly bool) {
	obj, ok := v.(map[string]any)
	if !ok {
		return
	}
	props := t.Types[typ]
	for k, val := range obj {
		p, ok := props[k]
		if !ok || readOnly && p.ReadOnly {
			delete(obj, k)
			continue
		}
		if p.Type != "" && !p.Any {
			eachElement(val, p.Containers, func(e any) { t.Prune(e, p.Type, readOnly) })
		}
	}
}

// eachElement calls f on the values inside containers.
func eachElement(v any, containers string, f func(any)) {
	if containers == "" {
		f(v)
		return
	}
	switch containers[0] {
	case '[':
		if list, ok := v.([]any); ok {
			for _, e := range list {
				eachElement(e, containers[1:], f)
			}
		}
	case '{':
		if m, ok := v.(map[string]any); ok {
			for _, e := range m {
				eachElement(e, containers[1:], f)
			}
		}
	}
}

// Beyond says what Undefined counts as beyond a tree.
type Beyond struct {
	// Lists are taken element by element (the result keeps their length,
	// nil where an element has nothing); otherwise a list the tree
	// defines is all defined.
	Lists bool
	// ReadOnly properties count as undefined: a client cannot set them.
	ReadOnly bool
}

// Undefined is the part of v, an object of type typ, that the tree does not
// define: a sparse copy holding only those properties and the objects that
// lead to them, or nil if there are none.
func (t *Tree) Undefined(v any, typ string, b Beyond) any {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	props := t.Types[typ]
	out := map[string]any{}
	for k, val := range obj {
		p, ok := props[k]
		if !ok || b.ReadOnly && p.ReadOnly {
			out[k] = val
			continue
		}
		if p.Type == "" || p.Any {
			continue
		}
		if sub := t.undefinedIn(val, p.Containers, p.Type, b); sub != nil {
			out[k] = sub
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func (t *Tree) undefinedIn(v any, containers, typ string, b Beyond) any {
	if containers == "" {
		return t.Undefined(v, typ, b)
	}
	switch containers[0] {
	case '[':
		list, ok := v.([]any)
		if !ok || !b.Lists {
			return nil
		}
		out := make([]any, len(list))
		found := false
		for i, e := range list {
			if out[i] = t.undefinedIn(e, containers[1:], typ, b); out[i] != nil {
				found = true
			}
		}
		if !found {
			return nil
		}
		return out
	case '{':
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		out := map[string]any{}
		for k, e := range m {
			if sub := t.undefinedIn(e, containers[1:], typ, b); sub != nil {
				out[k] = sub
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	return nil
}

// Overlay adds src's properties to dst where dst lacks them, into objects
// both have and element by element into lists of the same length; dst's
// values win. It returns the result, which shares dst's objects.
func Overlay(dst, src any) any {
	if src == nil {
		return dst
	}
	if dst == nil {
		return src
	}
	switch d := dst.(type) {
	case map[string]any:
		s, ok := src.(map[string]any)
		if !ok {
			return dst
		}
		for k, sv := range s {
			if dv, ok := d[k]; ok {
				d[k] = Overlay(dv, sv)
			} else {
				d[k] = sv
			}
		}
	case []any:
		s, ok := src.([]any)
		if !ok || len(s) != len(d) {
			return dst
		}
		for i := range d {
			d[i] = Overlay(d[i], s[i])
		}
	}
	return dst
}
