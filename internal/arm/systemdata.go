package arm

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

// Touched is a resource's systemData after a write by the request's
// caller: prev's creation kept (a new one when prev is nil), the caller and
// now as its last modification. Slipway's callers are service principals,
// which ARM records by application ID, as type Application.
func Touched(ctx context.Context, prev *slipwayv1.SystemData) *slipwayv1.SystemData {
	by := ""
	if c := Caller(ctx); c != nil {
		by = c.AppID
	}
	now := metav1.NewTime(time.Now().UTC().Truncate(time.Second))
	sd := &slipwayv1.SystemData{CreatedBy: by, CreatedByType: "Application", CreatedAt: now}
	if prev != nil {
		sd.CreatedBy, sd.CreatedByType, sd.CreatedAt = prev.CreatedBy, prev.CreatedByType, prev.CreatedAt
	}
	sd.LastModifiedBy, sd.LastModifiedByType, sd.LastModifiedAt = by, "Application", now
	return sd
}
