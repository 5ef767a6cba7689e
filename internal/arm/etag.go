package arm

import (
	"net/http"
	"strings"
)

// ETagAnnotation holds a resource's current eTag on its management object.
const ETagAnnotation = "slipway.dev/etag"

// CheckETag applies If-Match and If-None-Match.
func CheckETag(r *http.Request, current string, exists bool) error {
	if m := r.Header.Get("If-Match"); m != "" {
		if !exists || (m != "*" && strings.Trim(m, `"`) != current) {
			return NewError(http.StatusPreconditionFailed, "PreconditionFailed", "", "The condition specified by If-Match (%s) was not met: the resource's eTag is %q.", m, current)
		}
	}
	if m := r.Header.Get("If-None-Match"); m != "" && exists {
		if m == "*" || strings.Trim(m, `"`) == current {
			return NewError(http.StatusPreconditionFailed, "PreconditionFailed", "", "The condition specified by If-None-Match (%s) was not met: the resource exists.", m)
		}
	}
	return nil
}
