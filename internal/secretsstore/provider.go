package secretsstore

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	secretsstorev1 "sigs.k8s.io/secrets-store-csi-driver/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/slipway-dev/slipway/internal/addons"
	"github.com/slipway-dev/slipway/internal/identity"
	"github.com/slipway-dev/slipway/internal/keyvault"
)

// Vaults reads a vault's secrets as a caller, under the vault's own
// permission model (keyvault.DataPlane).
type Vaults interface {
	SecretFor(ctx context.Context, caller *identity.Claims, vault, name, version string) (*keyvault.Bundle, error)
}

// Principals authenticate a service principal's client secret and give
// its object ID (identity.Store).
type Principals interface {
	Authenticate(ctx context.Context, appID, secret string) (string, error)
}

// object is one entry of a SecretProviderClass's objects, as the Azure
// provider reads it.
type object struct {
	ObjectName           string `json:"objectName"`
	ObjectAlias          string `json:"objectAlias"`
	ObjectType           string `json:"objectType"`
	ObjectVersion        string `json:"objectVersion"`
	ObjectFormat         string `json:"objectFormat"`
	ObjectEncoding       string `json:"objectEncoding"`
	FilePermission       string `json:"filePermission"`
	ObjectVersionHistory int32  `json:"objectVersionHistory"`
}

// fileName is where the object is written in the mount.
func (o object) fileName() string {
	if alias := strings.TrimSpace(o.ObjectAlias); alias != "" {
		return alias
	}
	return o.ObjectName
}

// parseObjects reads the objects parameter: a YAML map whose "array" is
// a list of YAML documents, one per object (the format users find
// confusing, but the one every SecretProviderClass written for AKS uses).
func parseObjects(s string) ([]object, error) {
	var list struct {
		Array []string `json:"array"`
	}
	if err := yaml.Unmarshal([]byte(s), &list); err != nil {
		return nil, fmt.Errorf("failed to unmarshal objects, error: %w", err)
	}
	if len(list.Array) == 0 {
		return nil, errors.New("objects array is empty")
	}
	out := make([]object, 0, len(list.Array))
	seen := map[string]bool{}
	for _, doc := range list.Array {
		var o object
		if err := yaml.UnmarshalStrict([]byte(doc), &o); err != nil {
			return nil, fmt.Errorf("failed to unmarshal object %q, error: %w", doc, err)
		}
		o.ObjectName, o.ObjectType = strings.TrimSpace(o.ObjectName), strings.ToLower(strings.TrimSpace(o.ObjectType))
		if o.ObjectName == "" {
			return nil, errors.New("objectName is required for every object")
		}
		switch o.ObjectType {
		case "secret", "key", "cert":
		default:
			return nil, fmt.Errorf("invalid objectType %q for object %s: should be one of secret, key, cert", o.ObjectType, o.ObjectName)
		}
		name := o.fileName()
		if path.IsAbs(name) || strings.Contains(name, "..") || strings.ContainsRune(name, '/') {
			return nil, fmt.Errorf("file name %q for object %s must be a relative name without '..' or '/'", name, o.ObjectName)
		}
		if seen[name] {
			return nil, fmt.Errorf("object %s: file name %s is used twice, set objectAlias to tell them apart", o.ObjectName, name)
		}
		seen[name] = true
		switch strings.ToLower(o.ObjectEncoding) {
		case "", "utf-8", "base64", "hex":
		default:
			return nil, fmt.Errorf("invalid objectEncoding %q for object %s: should be one of utf-8, base64, hex", o.ObjectEncoding, o.ObjectName)
		}
		if o.FilePermission != "" {
			if mode, err := strconv.ParseUint(o.FilePermission, 8, 32); err != nil || mode > 0o777 {
				return nil, fmt.Errorf("invalid filePermission %q for object %s", o.FilePermission, o.ObjectName)
			}
		}
		out = append(out, o)
	}
	return out, nil
}

// mount is what the provider returns for one volume: each file's content
// by name, and each object's version.
type mount struct {
	files   map[string][]byte
	objects []secretsstorev1.SecretProviderClassObject
}

// provider does what the Azure provider does for a mount: read the
// SecretProviderClass's parameters, act as the identity they name and
// fetch every object from the vault. Any object that cannot be fetched
// fails the whole mount, as upstream.
type provider struct {
	vaults     Vaults
	principals Principals
	tenantID   string
}

// fetch mounts the objects of params for a pod, with the node's
// identities (the user-assigned identities on its scale set) and the
// nodePublishSecretRef's data, if the volume has one.
func (p *provider) fetch(ctx context.Context, params map[string]string, identities []addons.Identity, nodePublishSecret map[string][]byte) (*mount, error) {
	vault := strings.TrimSpace(params["keyvaultName"])
	if vault == "" {
		return nil, errors.New("keyvaultName is not set")
	}
	if !keyvault.ValidName(vault) {
		return nil, fmt.Errorf("invalid vault name: %q, must match [-a-zA-Z0-9]{3,24}", vault)
	}
	objects, err := parseObjects(params["objects"])
	if err != nil {
		return nil, err
	}
	caller, err := p.caller(ctx, params, identities, nodePublishSecret)
	if err != nil {
		return nil, err
	}
	out := &mount{files: map[string][]byte{}}
	for _, o := range objects {
		content, version, err := p.object(ctx, caller, vault, o)
		if err != nil {
			return nil, fmt.Errorf("failed to get objectType:%s, objectName:%s, objectVersion:%s: %w", o.ObjectType, o.ObjectName, o.ObjectVersion, err)
		}
		out.files[o.fileName()] = content
		out.objects = append(out.objects, secretsstorev1.SecretProviderClassObject{ID: o.ObjectType + "/" + o.ObjectName, Version: version})
	}
	return out, nil
}

// object fetches one object: its file content and version.
func (p *provider) object(ctx context.Context, caller *identity.Claims, vault string, o object) ([]byte, string, error) {
	if o.ObjectType != "secret" {
		return nil, "", fmt.Errorf("objectType %s is not served: Slipway's vaults hold secrets only", o.ObjectType)
	}
	if o.ObjectVersionHistory > 1 {
		return nil, "", errors.New("objectVersionHistory is not served by Slipway")
	}
	version := strings.TrimSpace(o.ObjectVersion)
	if strings.EqualFold(version, "latest") {
		version = ""
	}
	b, err := p.vaults.SecretFor(ctx, caller, vault, o.ObjectName, version)
	if err != nil {
		var kv *keyvault.Error
		if errors.As(err, &kv) {
			// As azsecrets' ResponseError reads in the provider's log.
			return nil, "", fmt.Errorf("RESPONSE %d: %s: %s", kv.Status, kv.Code, kv.Message)
		}
		return nil, "", err
	}
	if b.Value == nil {
		return nil, "", errors.New("the secret has no value")
	}
	value := []byte(*b.Value)
	switch strings.ToLower(o.ObjectEncoding) {
	case "base64":
		if value, err = base64.StdEncoding.DecodeString(*b.Value); err != nil {
			return nil, "", fmt.Errorf("failed to decode the secret as base64: %w", err)
		}
	case "hex":
		if value, err = hex.DecodeString(*b.Value); err != nil {
			return nil, "", fmt.Errorf("failed to decode the secret as hex: %w", err)
		}
	}
	return value, b.ID[strings.LastIndex(b.ID, "/")+1:], nil
}

// caller is the identity a mount acts as, by the parameters' identity
// mode: a user-assigned identity on the node's scale set
// (useVMManagedIdentity with its client ID, the add-on's or the
// kubelet's), or a service principal whose client ID and secret are in
// the volume's nodePublishSecretRef.
func (p *provider) caller(ctx context.Context, params map[string]string, identities []addons.Identity, nodePublishSecret map[string][]byte) (*identity.Claims, error) {
	tenant := strings.TrimSpace(params["tenantID"])
	if tenant == "" {
		tenant = strings.TrimSpace(params["tenantId"]) // the deprecated spelling, still read
	}
	if tenant == "" {
		return nil, errors.New("tenantId is not provided")
	}
	if !strings.EqualFold(tenant, p.tenantID) {
		return nil, fmt.Errorf("failed to acquire a token: AADSTS90002: Tenant '%s' not found. Check to make sure you have the correct tenant ID", tenant)
	}
	modes := 0
	for _, k := range []string{"usePodIdentity", "useVMManagedIdentity", "useAzureTokenProxy"} {
		if strings.EqualFold(strings.TrimSpace(params[k]), "true") {
			modes++
		}
	}
	if modes > 1 {
		return nil, errors.New("only one identity mode can be enabled at a time: usePodIdentity, useVMManagedIdentity or useAzureTokenProxy")
	}
	switch {
	case strings.EqualFold(params["usePodIdentity"], "true"):
		return nil, errors.New("usePodIdentity is not served: AAD pod identity is deprecated; use useVMManagedIdentity with the add-on's identity, or a service principal")
	case strings.EqualFold(params["useAzureTokenProxy"], "true"), params["clientID"] != "" && !strings.EqualFold(params["useVMManagedIdentity"], "true"):
		return nil, errors.New("workload identity (clientID) is not served: Slipway has no federated identity credentials; use useVMManagedIdentity with the add-on's identity, or a service principal")
	case strings.EqualFold(params["useVMManagedIdentity"], "true"):
		want := strings.TrimSpace(params["userAssignedIdentityID"])
		if want == "" {
			return nil, errors.New("failed to acquire a token: ManagedIdentityCredential: the node's scale set has no system-assigned identity; set userAssignedIdentityID to the client ID of the add-on's identity")
		}
		for _, id := range identities {
			if strings.EqualFold(id.ClientID, want) {
				return &identity.Claims{TenantID: p.tenantID, AppID: id.ClientID, ObjectID: id.ObjectID, IdType: "app"}, nil
			}
		}
		return nil, fmt.Errorf("failed to acquire a token: ManagedIdentityCredential: Identity not found: no identity with client ID %s is assigned to the node's scale set", want)
	}
	var appID, secret string
	for k, v := range nodePublishSecret {
		switch strings.ToLower(k) {
		case "clientid":
			appID = strings.TrimSpace(string(v))
		case "clientsecret":
			secret = strings.TrimSpace(string(v))
		}
	}
	if nodePublishSecret == nil {
		return nil, errors.New("failed to get credentials, nodePublishSecretRef secret is not set")
	}
	if appID == "" || secret == "" {
		return nil, errors.New("could not find clientid or clientsecret in secrets(nodePublishSecretRef)")
	}
	oid, err := p.principals.Authenticate(ctx, appID, secret)
	if errors.Is(err, identity.ErrBadCredentials) {
		return nil, fmt.Errorf("failed to acquire a token: AADSTS7000215: Invalid client secret provided for application %s", appID)
	}
	if err != nil {
		return nil, err
	}
	return &identity.Claims{TenantID: p.tenantID, AppID: appID, ObjectID: oid, IdType: "app"}, nil
}
