// Package health judges a managed cluster's availability from what its
// probes saw, as Azure Resource Health reports it for AKS, and keeps the
// history of those judgements: every transition of the last 30 days, and
// the planned maintenance and incidents that impacted the cluster.
//
// AKS's Resource Health asks four questions of a cluster: is it up and
// running, are its core services available, are all its nodes ready, and
// is its identity current and valid. A Signal holds the answers one round
// of probes found; Assess turns them into a Status; Observe records a
// Status in the history.
package health

import (
	"fmt"
	"sort"
	"strings"
)

// The availability states.
const (
	Available   = "Available"
	Degraded    = "Degraded"
	Unavailable = "Unavailable"
	Unknown     = "Unknown"
)

// The reason types of a state other than Available.
const (
	Unplanned     = "Unplanned"
	Planned       = "Planned"
	UserInitiated = "UserInitiated"
)

// Signal is what one round of probes saw of a cluster.
type Signal struct {
	// Creating is true until the cluster's first create ends: there is
	// nothing to probe yet.
	Creating bool
	// Stopped is true when the user stopped the cluster (or is stopping
	// or starting it).
	Stopped bool
	// APIServer is why the API server did not answer /readyz, or nil.
	APIServer error
	// Components are the control plane's other parts (the
	// controller manager, the scheduler), with why each is unhealthy, or
	// nil when it is healthy. Only meaningful when the API server answers.
	Components map[string]error
	// Nodes is how many nodes the cluster has (still provisioning ones
	// excluded), NotReady the names of those not Ready.
	Nodes    int
	NotReady []string
	// Services are the core services in kube-system that are not
	// available, with why.
	Services map[string]string
	// Identity is why the cluster's identity cannot get a token, or nil.
	Identity error
	// Maintenance describes planned maintenance under way (a node image
	// upgrade, node reboots), or is empty.
	Maintenance []string
}

// Status is a cluster's availability, as Resource Health reports it.
type Status struct {
	State      string
	ReasonType string
	// Reason is a short machine-readable cause, e.g. APIServerUnreachable.
	Reason  string
	Title   string
	Summary string
}

// Assess judges a cluster from one round of probes.
func Assess(s Signal) Status {
	switch {
	case s.Creating:
		return Status{State: Unknown, Reason: "Provisioning", Title: "Unknown",
			Summary: "The cluster is being created. Its health is reported once its control plane is running."}
	case s.Stopped:
		return Status{State: Unavailable, ReasonType: UserInitiated, Reason: "ClusterStopped", Title: "Stopped by user",
			Summary: "The cluster was stopped by a user request. Its control plane and nodes are not running; start it to make it available again."}
	case s.APIServer != nil && len(s.Maintenance) > 0:
		return Status{State: Unavailable, ReasonType: Planned, Reason: "PlannedMaintenance", Title: "Planned maintenance",
			Summary: fmt.Sprintf("The cluster's API server did not answer its health check (%v) while planned maintenance is under way: %s.", s.APIServer, strings.Join(s.Maintenance, "; "))}
	case s.APIServer != nil:
		return Status{State: Unavailable, ReasonType: Unplanned, Reason: "APIServerUnreachable", Title: "API server unavailable",
			Summary: fmt.Sprintf("The cluster's API server is not answering its health checks (%v). Workloads may keep running, but the cluster cannot be managed.", s.APIServer)}
	}
	var problems []string
	reason := ""
	note := func(r, msg string) {
		if reason == "" {
			reason = r
		}
		problems = append(problems, msg)
	}
	for _, name := range sortedKeys(s.Components) {
		if err := s.Components[name]; err != nil {
			note("ControlPlaneComponentUnhealthy", fmt.Sprintf("the %s is unhealthy (%v)", name, err))
		}
	}
	if len(s.Services) > 0 {
		var names []string
		for _, name := range sortedKeys(s.Services) {
			names = append(names, name+" ("+s.Services[name]+")")
		}
		note("CoreServicesUnavailable", "core services in kube-system are unavailable: "+strings.Join(names, ", "))
	}
	if n := len(s.NotReady); n > 0 {
		note("NodesNotReady", fmt.Sprintf("%d of %d nodes are not ready (%s)", n, s.Nodes, listSome(s.NotReady, 5)))
	}
	if s.Identity != nil {
		note("IdentityInvalid", fmt.Sprintf("the cluster's identity cannot get a token (%v)", s.Identity))
	}
	if len(s.Maintenance) > 0 {
		// Planned work explains whatever else is degraded while it runs.
		return Status{State: Degraded, ReasonType: Planned, Reason: "PlannedMaintenance", Title: "Planned maintenance",
			Summary: "Planned maintenance is under way: " + strings.Join(s.Maintenance, "; ") + ". Nodes are cordoned, drained and restarted in turn, within your pod disruption budgets."}
	}
	if len(problems) > 0 {
		return Status{State: Degraded, ReasonType: Unplanned, Reason: reason, Title: "Degraded",
			Summary: "The cluster's API server is available, but " + strings.Join(problems, "; ") + "."}
	}
	return Status{State: Available, Title: "Available",
		Summary: "There aren't any known problems affecting this cluster: its API server and core services are available, all its nodes are ready, and its identity is valid."}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func listSome(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}
