package app

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/portal"
)

// PortalLink makes a one-time sign-in link to the portal of the Slipway
// serving dataDir, for its bootstrap principal (the subscription's
// Owner), good for ttl.
func PortalLink(dataDir string, ttl time.Duration) (string, error) {
	conn, err := ReadConnection(filepath.Join(dataDir, "connection.json"))
	if err != nil {
		return "", fmt.Errorf("no Slipway has served %s yet: %w", dataDir, err)
	}
	token, err := portal.NewLink(dataDir, conn.ClientID, conn.ObjectID, "slipway-bootstrap", ttl)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(conn.ARMEndpoint, "/") + "/portal/signin/link?token=" + url.QueryEscape(token), nil
}
