package schema

import (
	"encoding/json"
	"reflect"
	"testing"
	"testing/fstest"
)

// Two versions of a resource: the later adds a property to the nested
// object, a list of objects, and moves "note" to a class of its own.
const (
	older = `{"version":"2024-01-01","types":{
  "R":{"id":{"r":true},"properties":{"t":"R.properties"}},
  "R.properties":{"size":{"k":"n"},"inner":{"t":"Inner"},"notes":{"t":"Note","c":"["},"note":{"t":"OldNote"}},
  "Inner":{"a":{}},
  "Note":{"text":{}},
  "OldNote":{"text":{},"by":{}}}}`
	newer = `{"version":"2025-01-01","types":{
  "R":{"id":{"r":true},"properties":{"t":"R.properties"}},
  "R.properties":{"size":{"k":"n"},"inner":{"t":"Inner"},"notes":{"t":"Note","c":"["},"note":{"t":"Note"},"labels":{"c":"{"}},
  "Inner":{"a":{},"b":{"k":"b"}},
  "Note":{"text":{},"when":{"k":"t"}}}}`
)

func load(t *testing.T) *Set {
	t.Helper()
	s, err := Load(fstest.MapFS{"a.json": {Data: []byte(older)}, "b.json": {Data: []byte(newer)}}, ".")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func doc(t *testing.T, s string) any {
	t.Helper()
	v, err := Decode([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func same(t *testing.T, what string, got any, want string) {
	t.Helper()
	if w := doc(t, want); !reflect.DeepEqual(got, w) {
		g, _ := json.Marshal(got)
		t.Errorf("%s = %s, want %s", what, g, want)
	}
}

func TestFor(t *testing.T) {
	s := load(t)
	for v, want := range map[string]string{
		"2024-01-01": "2024-01-01", "2023-06-01": "2024-01-01", "2024-06-01": "2025-01-01",
		"2025-01-01-preview": "2025-01-01", "2026-01-01": "2025-01-01",
	} {
		if got := s.For(v).Version; got != want {
			t.Errorf("For(%s) = %s, want %s", v, got, want)
		}
	}
}

func TestPrune(t *testing.T) {
	s := load(t)
	v := doc(t, `{"id":"x","extra":1,"properties":{"size":2,"inner":{"a":"1","b":true,"c":3},"notes":[{"text":"t","when":"w","z":0}],"labels":{"k":"v"}}}`)
	s.For("2024-01-01").Prune(v, "R", false)
	same(t, "pruned to 2024-01-01", v, `{"id":"x","properties":{"size":2,"inner":{"a":"1"},"notes":[{"text":"t"}]}}`)
	s.For("2024-01-01").Prune(v, "R", true)
	same(t, "read-only left out", v, `{"properties":{"size":2,"inner":{"a":"1"},"notes":[{"text":"t"}]}}`)
}

func TestUndefinedAndOverlay(t *testing.T) {
	s := load(t)
	full := doc(t, `{"properties":{"size":2,"inner":{"a":"1","b":true},"notes":[{"text":"t","when":"w"}],"labels":{"k":"v"}}}`)
	old := s.For("2024-01-01")
	same(t, "beyond 2024-01-01 with lists", old.Undefined(full, "R", Beyond{Lists: true}),
		`{"properties":{"inner":{"b":true},"notes":[{"when":"w"}],"labels":{"k":"v"}}}`)
	same(t, "beyond 2024-01-01, lists whole", old.Undefined(full, "R", Beyond{}),
		`{"properties":{"inner":{"b":true},"labels":{"k":"v"}}}`)
	if u := s.For("2025-01-01").Undefined(full, "R", Beyond{Lists: true}); u != nil {
		t.Errorf("the newer version defines it all, yet %v is beyond it", u)
	}
	// An old client's write, with what it cannot say laid back on.
	written := doc(t, `{"properties":{"size":3,"inner":{"a":"2"},"notes":[{"text":"u"}]}}`)
	Overlay(written, old.Undefined(full, "R", Beyond{Lists: true}))
	same(t, "overlaid", written, `{"properties":{"size":3,"inner":{"a":"2","b":true},"notes":[{"text":"u","when":"w"}],"labels":{"k":"v"}}}`)
	// Lists of another length are the client's own.
	shorter := doc(t, `{"properties":{"notes":[]}}`)
	Overlay(shorter, doc(t, `{"properties":{"notes":[{"when":"w"}]}}`))
	same(t, "a shorter list", shorter, `{"properties":{"notes":[]}}`)
}

func TestUnion(t *testing.T) {
	s := load(t)
	v := doc(t, `{"properties":{"note":{"text":"t","by":"me","when":"w"},"inner":{"b":false},"bogus":1}}`)
	s.Union().Prune(v, "R", true)
	// note's class changed (OldNote -> Note): the union keeps both's.
	same(t, "pruned to the union", v, `{"properties":{"note":{"text":"t","by":"me","when":"w"},"inner":{"b":false}}}`)
}
