package app

import (
	"context"
	"fmt"

	"github.com/slipway-dev/slipway/internal/identity"
)

// identityCheck answers Resource Health's fourth question, whether a
// cluster's identity is current and valid, with Slipway's token service:
// a managed identity gets a token signed and checked with the current key;
// a service principal must exist and hold a secret that has not expired.
type identityCheck struct {
	store            *identity.Store
	signer           *identity.Signer
	tenant, audience string
}

func (c identityCheck) CheckIdentity(ctx context.Context, clientID, objectID string) error {
	if clientID != "msi" {
		return c.store.CheckCurrent(ctx, clientID)
	}
	tok, _, err := c.signer.Issue(c.tenant, objectID, objectID, c.audience)
	if err != nil {
		return fmt.Errorf("issuing a token for the managed identity: %w", err)
	}
	if _, err := c.signer.Verify(tok); err != nil {
		return fmt.Errorf("the managed identity's token does not verify: %w", err)
	}
	return nil
}
