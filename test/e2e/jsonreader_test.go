package e2e

import (
	"bytes"
	"encoding/json"
	"io"
)

type jsonReader struct{ *bytes.Reader }

func newJSONReader(v any) *jsonReader {
	if s, ok := v.(string); ok {
		return &jsonReader{bytes.NewReader([]byte(s))}
	}
	data, _ := json.Marshal(v)
	return &jsonReader{bytes.NewReader(data)}
}

func (r *jsonReader) orNil() io.Reader {
	if r == nil {
		return nil
	}
	return r
}
