package hosting

import (
	"os"
	"path/filepath"
	"strconv"
)

// auditPolicy is the audit policy of every cluster's API server: it
// records the writes that Azure Policy's events are read from (see
// policy.FindingsOf), and little else. Pod writes
// at the Request level (their generated names are in the request); other
// writes at the Metadata level (no Secret's data is ever written); the
// status and heartbeat traffic of nodes and controllers not at all.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
  - level: None
    resources:
      - group: ""
        resources: ["events", "nodes", "nodes/status", "pods/status", "pods/binding", "endpoints", "serviceaccounts/token"]
      - group: ""
        resources: ["*/status"]
      - group: "apps"
        resources: ["*/status"]
      - group: "batch"
        resources: ["*/status"]
      - group: "coordination.k8s.io"
      - group: "events.k8s.io"
      - group: "discovery.k8s.io"
      - group: "authentication.k8s.io"
      - group: "authorization.k8s.io"
  - level: None
    nonResourceURLs: ["*"]
  - level: Request
    verbs: ["create", "update"]
    resources:
      - group: ""
        resources: ["pods"]
  - level: Metadata
    verbs: ["create", "update", "patch"]
  - level: None
`

// The audit log rotates at auditLogMaxMB, keeping one old file: readers
// follow it as it grows (auditlog.Follow), and the rotated file covers a
// reader that was down for a while.
const (
	auditLogMaxMB    = 20
	auditLogBackups  = 1
	auditPolicyFile  = "audit-policy.yaml"
	auditLogFileName = "audit.log"
)

// AuditLogPath is where the cluster's API server writes its audit log (JSON
// lines of audit.k8s.io/v1 events).
func (c *Cluster) AuditLogPath() string { return auditLogPath(c.dir) }

func auditLogPath(dir string) string { return filepath.Join(dir, "logs", auditLogFileName) }

// auditFlags are the API server's audit flags; writeAuditPolicy writes the
// file they name.
func auditFlags(dir string) map[string]string {
	return map[string]string{
		"audit-policy-file":   filepath.Join(dir, auditPolicyFile),
		"audit-log-path":      auditLogPath(dir),
		"audit-log-format":    "json",
		"audit-log-maxsize":   strconv.Itoa(auditLogMaxMB),
		"audit-log-maxbackup": strconv.Itoa(auditLogBackups),
		"audit-log-compress":  "false",
	}
}

func writeAuditPolicy(dir string) error {
	return os.WriteFile(filepath.Join(dir, auditPolicyFile), []byte(auditPolicy), 0o600)
}
