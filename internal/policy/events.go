package policy

import (
	"encoding/json"
	"regexp"
	"strings"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// The actions a policy event records: the effect the policy had on a
// request (policyDefinitionAction in Azure's policy events).
const (
	ActionDeny  = "deny"
	ActionAudit = "audit"
)

// Finding is one policy's word on one request, read from the audit log
// of a cluster's API server: the policy (a ValidatingAdmissionPolicy) or
// namespace quota (a ResourceQuota) that found the request's object
// non-compliant, and what it did.
type Finding struct {
	// Policy names the add-on's ValidatingAdmissionPolicy, or Quota its
	// ResourceQuota in the object's namespace; whichever it is holds
	// the assignment's ID in its annotations.
	Policy, Quota string
	Action        string
	Message       string
}

// exceededQuota is how the API server's quota admission names the quota
// a request would exceed.
var exceededQuota = regexp.MustCompile(`exceeded quota: (` + "azurepolicy-" + `[a-z0-9.-]+)`)

// FindingsOf are the add-on's findings on one audited request: the audit
// annotations its policies write ("<policy>/deny" or "<policy>/audit"),
// and a refusal by one of its quotas. Events of other stages, and
// requests no policy of the add-on found fault with, have none.
func FindingsOf(ev *auditv1.Event) []Finding {
	if ev.Stage != auditv1.StageResponseComplete {
		return nil
	}
	var out []Finding
	for key, msg := range ev.Annotations {
		name, action, ok := strings.Cut(key, "/")
		if !ok || !strings.HasPrefix(name, "azurepolicy-") || action != ActionDeny && action != ActionAudit {
			continue
		}
		out = append(out, Finding{Policy: name, Action: action, Message: msg})
	}
	if st := ev.ResponseStatus; st != nil && st.Code == 403 {
		if m := exceededQuota.FindStringSubmatch(st.Message); m != nil {
			out = append(out, Finding{Quota: m[1], Action: ActionDeny, Message: st.Message})
		}
	}
	return out
}

// ObjectOf is the Kubernetes object an audited request was for. A pod
// created with only generateName (as controllers make them) has no name
// until admitted; a refused one is known by its generateName, from the
// request the audit log records of pods.
func ObjectOf(ev *auditv1.Event) (kind, namespace, name string) {
	ref := ev.ObjectRef
	if ref == nil {
		return "", "", ""
	}
	kind, name = ref.Resource, ref.Name
	if kind == "pods" {
		kind = "Pod"
	}
	if name == "" && ev.RequestObject != nil {
		var obj struct {
			Metadata struct{ Name, GenerateName string } `json:"metadata"`
		}
		if json.Unmarshal(ev.RequestObject.Raw, &obj) == nil {
			name = obj.Metadata.Name
			if name == "" {
				name = obj.Metadata.GenerateName
			}
		}
	}
	return kind, ref.Namespace, name
}
