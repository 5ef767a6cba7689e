package arm

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestBodyBounds: a PUT or PATCH too large to be stored is refused before
// anything reaches the management plane; other requests may carry up to
// maxBody.
func TestBodyBounds(t *testing.T) {
	for _, tc := range []struct {
		method string
		size   int
		status int // 0: read
	}{
		{http.MethodPut, maxStored, 0},
		{http.MethodPut, maxStored + 1, http.StatusBadRequest},
		{http.MethodPatch, maxStored + 1, http.StatusBadRequest},
		{http.MethodPost, maxStored + 1, 0},
		{http.MethodPost, maxBody + 1, http.StatusRequestEntityTooLarge},
	} {
		r := httptest.NewRequest(tc.method, "/x", bytes.NewReader(bytes.Repeat([]byte(" "), tc.size)))
		r.Header.Set("Content-Type", "application/json")
		_, err := ReadBody(r)
		var e *Error
		switch {
		case tc.status == 0 && err != nil:
			t.Errorf("%s of %d bytes: %v", tc.method, tc.size, err)
		case tc.status != 0 && (!errors.As(err, &e) || e.Status != tc.status || e.Code != "RequestContentTooLarge"):
			t.Errorf("%s of %d bytes: %v, want %d RequestContentTooLarge", tc.method, tc.size, err, tc.status)
		}
	}
}
