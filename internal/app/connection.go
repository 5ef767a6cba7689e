package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/slipway-dev/slipway/internal/atomicfile"
	"github.com/slipway-dev/slipway/internal/identity"
)

// Connection is <data-dir>/connection.json: how clients reach and log in to
// this Slipway. Its field names are an interface other tools rely on.
type Connection struct {
	ARMEndpoint    string `json:"armEndpoint"`
	Audience       string `json:"audience"`
	AuthorityHost  string `json:"authorityHost"`
	LoginEndpoint  string `json:"loginEndpoint"`
	TenantID       string `json:"tenantId"`
	SubscriptionID string `json:"subscriptionId"`
	ClientID       string `json:"clientId"`
	ClientSecret   string `json:"clientSecret"`
	CACertFile     string `json:"caCertFile"`
	Location       string `json:"location"`
	// ObjectID is the bootstrap principal's object ID.
	ObjectID string `json:"objectId"`
	// KeyVaultDNSSuffix is the DNS suffix of the key vaults' data planes
	// (https://{vault}.{suffix}:{port}/, the port ARM's). Such names
	// resolve nowhere by themselves: map them to Slipway's address.
	KeyVaultDNSSuffix string `json:"keyVaultDNSSuffix"`
}

// DefaultAudience is the ARM audience tokens are issued for.
const DefaultAudience = "https://management.slipway.local/"

// DefaultKeyVaultDNSSuffix is the key vaults' DNS suffix unless serve is
// told another: a .test name (RFC 2606) that no DNS will ever answer for
// someone else.
const DefaultKeyVaultDNSSuffix = "vault.slipway.test"

// DefaultLocation is the location Slipway reports and defaults to.
const DefaultLocation = "local"

// ReadConnection reads a connection file.
func ReadConnection(path string) (*Connection, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Connection
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// loadOrCreateConnection keeps the installation's identity (tenant,
// subscription, bootstrap principal) across restarts; the endpoints are
// refreshed each start.
func loadOrCreateConnection(path string) (*Connection, error) {
	c, err := ReadConnection(path)
	if errors.Is(err, fs.ErrNotExist) {
		secret, _ := identity.NewSecret()
		return &Connection{
			TenantID: identity.NewGUID(), SubscriptionID: identity.NewGUID(),
			ClientID: identity.NewGUID(), ObjectID: identity.NewGUID(), ClientSecret: secret,
			Audience: DefaultAudience, Location: DefaultLocation,
		}, nil
	}
	if err != nil {
		return nil, err
	}
	if c.ObjectID == "" {
		c.ObjectID = identity.NewGUID()
	}
	return c, nil
}

func (c *Connection) write(path string) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(data, '\n'), 0o600)
}
