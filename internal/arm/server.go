// Package arm is Slipway's Azure Resource Manager front door: it routes ARM
// requests (case-insensitive segments, collapsed slashes, api-version
// checked), authenticates them, validates and translates ARM JSON (the
// official SDK's model types) to and from the management objects, and answers
// long-running operations as ARM does. It never runs anything itself: the
// controllers act on what it writes.
package arm

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/slipway-dev/slipway/internal/authz"
	"github.com/slipway-dev/slipway/internal/identity"
	"github.com/slipway-dev/slipway/internal/nodeimage"
)

// Credentials gives the kubeconfigs of hosted clusters.
type Credentials interface {
	// Kubeconfig returns a kubeconfig for the hosted cluster with the given
	// ID; admin selects the cluster-admin credential over the user's.
	Kubeconfig(hostedID string, admin bool, cluster, user, context string) ([]byte, error)
}

// Config configures the front door.
type Config struct {
	// BaseURL is the server's external URL, without trailing slash.
	BaseURL        string
	SubscriptionID string
	TenantID       string
	// Location is the default (and only) location.
	Location string
	// Audience is the token audience ARM calls need.
	Audience string
	// Client reads and writes the management objects.
	Client      client.Client
	Signer      *identity.Signer
	Principals  identity.Principals
	Credentials Credentials
	// Images is the node image catalog.
	Images *nodeimage.Catalog
	// Authorizer checks every call against the role assignments; nil
	// lets every authenticated caller do everything.
	Authorizer *authz.Authorizer
	// PrincipalStore creates service principals and their secrets.
	PrincipalStore *identity.Store
	// RetryAfter is what long-running operations tell clients to wait
	// between polls.
	RetryAfter time.Duration
}

// Server serves ARM.
type Server struct {
	cfg    Config
	routes []route
}

// New returns the front door.
func New(cfg Config) *Server {
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = time.Second
	}
	s := &Server{cfg: cfg}
	s.routes = s.routeTable()
	return s
}

// Handler returns the HTTP handler for everything Slipway serves on its
// ARM port: the token service, metadata and ARM.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	(&identity.Endpoints{BaseURL: s.cfg.BaseURL, TenantID: s.cfg.TenantID, Signer: s.cfg.Signer, Principals: s.cfg.Principals}).Register(mux)
	mux.HandleFunc("GET /metadata/endpoints", s.metadataEndpoints)
	return cleanPath(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// ARM paths are case-insensitive, which ServeMux patterns are not.
		first, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if strings.EqualFold(first, "subscriptions") {
			s.serveARM(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	}))
}

// cleanPath collapses repeated slashes and drops a trailing one before
// routing: az asks for //metadata/endpoints, and http.ServeMux would answer
// a path like that with a redirect instead.
func cleanPath(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		for strings.Contains(p, "//") {
			p = strings.ReplaceAll(p, "//", "/")
		}
		if len(p) > 1 {
			p = strings.TrimSuffix(p, "/")
		}
		r.URL.Path, r.URL.RawPath = p, ""
		next.ServeHTTP(w, r)
	})
}

// metadataEndpoints answers az cloud register, in the Azure Stack format.
func (s *Server) metadataEndpoints(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"galleryEndpoint": s.cfg.BaseURL + "/gallery/",
		"graphEndpoint":   s.cfg.BaseURL + "/graph/",
		"portalEndpoint":  s.cfg.BaseURL + "/portal/",
		"authentication": map[string]any{
			"loginEndpoint": identity.ADFSIssuer(s.cfg.BaseURL),
			"audiences":     []string{s.cfg.Audience},
		},
	})
}

type params map[string]string

type handlerFunc func(w http.ResponseWriter, r *http.Request, p params) error

type route struct {
	method  string
	segs    []string // lower-case literals, or "{name}"
	handler handlerFunc
	// provider is the resource provider whose api-versions apply.
	provider string
	// authorizeInHandler says the handler authorizes the call itself.
	authorizeInHandler bool
}

// Route patterns: a resource group, a managed cluster, an agent pool, and
// the Microsoft.ContainerService provider of the subscription.
const (
	routeGroup    = "subscriptions/{sub}/resourcegroups/{rg}"
	routeCluster  = routeGroup + "/providers/microsoft.containerservice/managedclusters/{cluster}"
	routePool     = routeCluster + "/agentpools/{pool}"
	routeProvider = "subscriptions/{sub}/providers/microsoft.containerservice"
)

func (s *Server) routeTable() []route {
	r := func(method, pattern, provider string, h handlerFunc) route {
		return route{method: method, segs: strings.Split(pattern, "/"), handler: h, provider: provider}
	}
	res, aks := providerResources, providerContainerService
	routes := []route{
		r("GET", "subscriptions", res, s.listSubscriptions),
		r("GET", "subscriptions/{sub}", res, s.getSubscription),
		r("GET", "subscriptions/{sub}/resourcegroups", res, s.listResourceGroups),
		r("PUT", routeGroup, res, s.putResourceGroup),
		r("GET", routeGroup, res, s.getResourceGroup),
		r("HEAD", routeGroup, res, s.headResourceGroup),
		r("PATCH", routeGroup, res, s.patchResourceGroup),
		r("DELETE", routeGroup, res, s.deleteResourceGroup),
		inHandler(r("GET", "subscriptions/{sub}/providers/microsoft.resources/locations/{loc}/operations/{op}", res, s.getOperationStatus)),
		inHandler(r("GET", "subscriptions/{sub}/providers/microsoft.resources/locations/{loc}/operationresults/{op}", res, s.getOperationResult)),

		r("GET", routeProvider+"/managedclusters", aks, s.listManagedClusters),
		r("GET", routeGroup+"/providers/microsoft.containerservice/managedclusters", aks, s.listManagedClusters),
		r("PUT", routeCluster, aks, s.putManagedCluster),
		r("GET", routeCluster, aks, s.getManagedCluster),
		r("PATCH", routeCluster, aks, s.patchManagedCluster),
		r("DELETE", routeCluster, aks, s.deleteManagedCluster),
		r("POST", routeCluster+"/listclusteradmincredential", aks, s.listCredential(true)),
		r("POST", routeCluster+"/listclusterusercredential", aks, s.listCredential(false)),
		r("POST", routeCluster+"/start", aks, s.startStopCluster(false)),
		r("POST", routeCluster+"/stop", aks, s.startStopCluster(true)),
		r("POST", routeCluster+"/abort", aks, s.abortCluster),
		r("GET", routeCluster+"/upgradeprofiles/default", aks, s.getClusterUpgradeProfile),
		r("GET", routeCluster+"/availableagentpoolversions", aks, s.getAvailableAgentPoolVersions),
		r("GET", routeCluster+"/agentpools", aks, s.listAgentPools),
		r("PUT", routePool, aks, s.putAgentPool),
		r("GET", routePool, aks, s.getAgentPool),
		r("DELETE", routePool, aks, s.deleteAgentPool),
		r("POST", routePool+"/abort", aks, s.abortAgentPool),
		r("GET", routePool+"/upgradeprofiles/default", aks, s.getAgentPoolUpgradeProfile),
		r("POST", routePool+"/deletemachines", aks, s.deleteMachines),
		r("POST", routePool+"/upgradenodeimageversion", aks, s.upgradeNodeImageVersion),
		r("GET", routeCluster+"/maintenanceconfigurations", aks, s.listMaintenanceConfigurations),
		r("GET", routeCluster+"/maintenanceconfigurations/{config}", aks, s.getMaintenanceConfiguration),
		r("PUT", routeCluster+"/maintenanceconfigurations/{config}", aks, s.putMaintenanceConfiguration),
		r("DELETE", routeCluster+"/maintenanceconfigurations/{config}", aks, s.deleteMaintenanceConfiguration),
		r("GET", routeCluster+"/nodeosupgraderuns", aks, s.listNodeOSUpgradeRuns),
		r("GET", routeProvider+"/locations/{loc}/nodeimageversions", aks, s.listNodeImageVersions),
		r("POST", routeProvider+"/locations/{loc}/nodeimageversions/publish", aks, s.publishNodeImage),
		r("POST", routePool+"/machines/{machine}/simulateeviction", aks, s.simulateEviction),
		r("GET", routePool+"/machines", aks, s.listMachines),
		r("GET", routePool+"/machines/{machine}", aks, s.getMachine),
		r("GET", routeProvider+"/locations/{loc}/kubernetesversions", aks, s.listKubernetesVersions),
		r("GET", routeProvider+"/locations/{loc}/orchestrators", providerOrchestrators, s.listOrchestrators),
		inHandler(r("GET", routeProvider+"/locations/{loc}/operations/{op}", aks, s.getOperationStatus)),
		inHandler(r("GET", routeProvider+"/locations/{loc}/operationresults/{op}", aks, s.getOperationResult)),
		r("POST", "subscriptions/{sub}/providers/slipway.identity/serviceprincipals", providerIdentity, s.createServicePrincipal),
		r("GET", "subscriptions/{sub}/providers/slipway.identity/serviceprincipals", providerIdentity, s.listServicePrincipals),
		r("POST", "subscriptions/{sub}/providers/slipway.identity/serviceprincipals/{app}/addpassword", providerIdentity, s.addPassword),
		r("POST", "subscriptions/{sub}/providers/slipway.identity/rotatesigningkey", providerIdentity, s.rotateSigningKey),
	}
	for _, scope := range roleScopes {
		auth := scope + "/providers/microsoft.authorization"
		routes = append(routes,
			r("GET", auth+"/roleassignments", providerAuthorization, s.listRoleAssignments),
			r("GET", auth+"/roleassignments/{assignment}", providerAuthorization, s.getRoleAssignment),
			r("PUT", auth+"/roleassignments/{assignment}", providerAuthorization, s.putRoleAssignment),
			r("DELETE", auth+"/roleassignments/{assignment}", providerAuthorization, s.deleteRoleAssignment),
			r("GET", auth+"/roledefinitions", providerAuthorization, s.listRoleDefinitions),
			r("GET", auth+"/roledefinitions/{role}", providerAuthorization, s.getRoleDefinition),
		)
	}
	return routes
}

// inHandler marks a route whose handler authorizes the call itself.
func inHandler(rt route) route {
	rt.authorizeInHandler = true
	return rt
}

func (rt route) match(segs []string) (params, bool) {
	if len(segs) != len(rt.segs) {
		return nil, false
	}
	p := params{}
	for i, want := range rt.segs {
		if strings.HasPrefix(want, "{") {
			p[strings.Trim(want, "{}")] = segs[i]
		} else if !strings.EqualFold(want, segs[i]) {
			return nil, false
		}
	}
	return p, true
}

// serveARM authenticates, checks the api-version and dispatches.
func (s *Server) serveARM(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var matched *route
	var p params
	methodKnown := false
	for i := range s.routes {
		if q, ok := s.routes[i].match(segs); ok {
			methodKnown = true
			if s.routes[i].method == r.Method {
				matched, p = &s.routes[i], q
				break
			}
		}
	}
	claims, err := s.authenticate(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims))
	if matched == nil {
		if methodKnown {
			writeError(w, r, newError(http.StatusMethodNotAllowed, "MethodNotAllowed", "", "The requested method %s is not allowed for %s.", r.Method, r.URL.Path))
			return
		}
		writeError(w, r, newError(http.StatusNotFound, "InvalidResourceType", "", "The resource type could not be found in the namespace for path '%s'.", r.URL.Path))
		return
	}
	if err := checkAPIVersion(matched.provider, r.URL.Query().Get("api-version")); err != nil {
		writeError(w, r, err)
		return
	}
	if sub, ok := p["sub"]; ok && !strings.EqualFold(sub, s.cfg.SubscriptionID) {
		writeError(w, r, newError(http.StatusNotFound, "SubscriptionNotFound", "", "The subscription '%s' could not be found.", sub))
		return
	}
	if err := s.authorizeRoute(r, matched, p); err != nil {
		writeError(w, r, err)
		return
	}
	if err := matched.handler(w, r, p); err != nil {
		writeError(w, r, err)
	}
}

type claimsKey struct{}

func (s *Server) authenticate(r *http.Request) (*identity.Claims, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, newError(http.StatusUnauthorized, "AuthenticationFailed", "", "Authentication failed. The 'Authorization' header is missing.")
	}
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return nil, newError(http.StatusUnauthorized, "AuthenticationFailed", "", "Authentication failed. The 'Authorization' header is provided in an invalid format.")
	}
	c, err := s.cfg.Signer.Verify(strings.TrimSpace(tok))
	switch err {
	case nil:
		return c, nil
	case identity.ErrExpiredToken:
		return nil, newError(http.StatusUnauthorized, "ExpiredAuthenticationToken", "", "The access token expiry UTC time is earlier than current UTC time.")
	case identity.ErrWrongAudience:
		return nil, newError(http.StatusUnauthorized, "InvalidAuthenticationTokenAudience", "", "The access token has been obtained for wrong audience or resource. It should exactly match with one of the allowed audiences '%s'.", s.cfg.Audience)
	default:
		return nil, newError(http.StatusUnauthorized, "InvalidAuthenticationToken", "", "The access token is invalid.")
	}
}

const (
	providerResources        = "Microsoft.Resources"
	providerContainerService = "Microsoft.ContainerService"
	// providerIdentity is Slipway's own: service principals and their
	// secrets, which Entra ID's Graph API manages on Azure.
	providerIdentity = "Slipway.Identity"
)

// ContainerServiceAPIVersions are the Microsoft.ContainerService api-versions
// Slipway serves: the GA releases from the one az 2.45 speaks to the newest
// in the AKS specs. Their wire formats differ only by added fields, which the
// SDK's newest models cover.
var ContainerServiceAPIVersions = []string{
	"2022-11-01", "2023-01-01", "2023-02-01", "2023-03-01", "2023-04-01", "2023-05-01", "2023-06-01",
	"2023-07-01", "2023-08-01", "2023-09-01", "2023-10-01", "2023-11-01", "2024-01-01", "2024-02-01",
	"2024-05-01", "2024-06-01", "2024-07-01", "2024-08-01", "2024-09-01", "2024-10-01", "2025-01-01",
	"2025-02-01", "2025-03-01", "2025-04-01", "2025-05-01", "2025-06-01", "2025-07-01", "2025-08-01",
	"2025-09-01", "2025-10-01",
}

// providerOrchestrators is the orchestrators list of Microsoft.ContainerService,
// which az aks get-versions still reads at its own, older api-version.
const providerOrchestrators = "Microsoft.ContainerService/orchestrators"

var orchestratorsAPIVersions = []string{"2017-09-30", "2019-04-01", "2019-08-01"}

var dateVersion = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(-preview)?$`)

func checkAPIVersion(provider, v string) error {
	if v == "" {
		return badRequest("MissingApiVersionParameter", "", "The api-version query parameter (?api-version=) is required for all requests.")
	}
	if provider == providerOrchestrators && slices.Contains(orchestratorsAPIVersions, v) {
		return nil
	}
	if provider == providerContainerService || provider == providerOrchestrators {
		if !slices.Contains(ContainerServiceAPIVersions, v) {
			return badRequest("InvalidApiVersionParameter", "", "The api-version '%s' is invalid. The supported versions are '%s'.", v, strings.Join(ContainerServiceAPIVersions, ","))
		}
		return nil
	}
	// Microsoft.Resources has served every dated version since 2014 with
	// the same shapes for what Slipway implements.
	if !dateVersion.MatchString(v) {
		return badRequest("InvalidApiVersionParameter", "", "The api-version '%s' is invalid.", v)
	}
	return nil
}
