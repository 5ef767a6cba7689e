package e2e

import "github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

func policyScopes(s *server) policy.TokenRequestOptions {
	return policy.TokenRequestOptions{Scopes: []string{s.conn.Audience + "/.default"}}
}
