// Package management gives Slipway its management plane: the API server that
// stores its objects (api/v1alpha1) as custom resources. By default Slipway
// hosts that API server itself, in its data directory, with the hosting
// package; pointed at an existing cluster it uses that instead, which is how
// Slipway runs past one machine.
package management

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/datastore"
	"github.com/slipway-dev/slipway/internal/hosting"
)

//go:embed crds/*.yaml
var crdFiles embed.FS

// hostedID is the ID of the self-hosted management control plane.
const hostedID = "management"

// Options configure the management plane.
type Options struct {
	// DataDir is Slipway's data directory; a self-hosted management plane
	// lives in DataDir/management.
	DataDir string
	// Kubeconfig, if set, points at an existing cluster to use instead.
	Kubeconfig string
	// Executable is the slipway binary (see hosting.Options).
	Executable string
	// Progress receives a line before each slow step.
	Progress io.Writer
	// Ports is the port range of a self-hosted management plane: apart
	// from the clusters', so the two allocators never meet.
	Ports hosting.PortRange
	// Advertise, if set, is where hosts on other machines reach a
	// self-hosted management plane (hosting.Options.Advertise); its
	// Kubeconfig points there.
	Advertise string
}

// Plane is an open management plane.
type Plane struct {
	Config *rest.Config
	Scheme *runtime.Scheme
	// Hosted is true when Slipway runs the management API server itself.
	Hosted bool
	host   *hosting.Host
}

// Scheme returns a scheme with Kubernetes' and Slipway's types.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, slipwayv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err) // static registration: cannot fail at run time
		}
	}
	return s
}

// Open starts or connects to the management plane and installs Slipway's
// CRDs and namespace in it.
func Open(ctx context.Context, o Options) (*Plane, error) {
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	p := &Plane{Scheme: NewScheme()}
	if o.Kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("management kubeconfig: %w", err)
		}
		p.Config = cfg
	} else {
		host, err := hosting.New(hosting.Options{
			DataDir:    filepath.Join(o.DataDir, "management"),
			Executable: o.Executable,
			Ports:      o.Ports,
			Advertise:  o.Advertise,
		})
		if err != nil {
			return nil, fmt.Errorf("management plane: %w", err)
		}
		p.host, p.Hosted = host, true
		fmt.Fprintln(o.Progress, "Starting the management API server (etcd and kube-apiserver)...")
		c, err := host.Get(hostedID)
		if errors.Is(err, hosting.ErrNotFound) {
			c, err = host.Create(ctx, hosting.ClusterSpec{ID: hostedID, APIOnly: true})
		} else if err == nil {
			err = c.Start(ctx)
		}
		if err != nil {
			host.Close()
			return nil, fmt.Errorf("management plane: %w", err)
		}
		if p.Config, err = c.RESTConfig(hosting.Admin); err != nil {
			host.Close()
			return nil, fmt.Errorf("management plane: %w", err)
		}
	}
	// Slipway's controllers and ARM front door talk to it a lot; the
	// client-go defaults (5 QPS) would throttle a busy server.
	p.Config.QPS, p.Config.Burst = 200, 400
	if err := p.install(ctx); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// KubeconfigFile is where serve writes a self-hosted management plane's
// kubeconfig, in Slipway's data directory, for the commands that keep
// their objects there too (slipway csi --management-kubeconfig).
const KubeconfigFile = "management.kubeconfig"

// Kubeconfig returns an admin kubeconfig of a self-hosted management plane.
func (p *Plane) Kubeconfig() ([]byte, error) {
	if p.host == nil {
		return nil, errors.New("the management plane is not Slipway's own: use its kubeconfig")
	}
	c, err := p.host.Get(hostedID)
	if err != nil {
		return nil, fmt.Errorf("management plane: %w", err)
	}
	return c.Kubeconfig(hosting.Admin, hosting.KubeconfigNames{Cluster: "slipway-management", User: "slipway-admin", Context: "slipway-management"})
}

// Members are the running etcd of a self-hosted management plane, for an
// online backup; none for a plane elsewhere (its owner backs it up).
func (p *Plane) Members() ([]datastore.Member, error) {
	if !p.Hosted {
		return nil, nil
	}
	return p.host.Members()
}

// Close stops a self-hosted management plane.
func (p *Plane) Close() {
	if p.host != nil {
		p.host.Close()
	}
}

// install creates or updates the CRDs and the namespace, and waits until the
// CRDs are served.
func (p *Plane) install(ctx context.Context) error {
	c, err := client.New(p.Config, client.Options{Scheme: p.Scheme})
	if err != nil {
		return fmt.Errorf("management client: %w", err)
	}
	crds, err := CRDs()
	if err != nil {
		return err
	}
	for _, crd := range crds {
		existing := &apiextensionsv1.CustomResourceDefinition{}
		err := c.Get(ctx, client.ObjectKeyFromObject(crd), existing)
		switch {
		case apierrors.IsNotFound(err):
			err = c.Create(ctx, crd)
		case err == nil:
			crd.ResourceVersion = existing.ResourceVersion
			err = c.Update(ctx, crd)
		}
		if err != nil {
			return fmt.Errorf("installing CRD %s: %w", crd.Name, err)
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: slipwayv1.Namespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", slipwayv1.Namespace, err)
	}
	deadline := time.Now().Add(time.Minute)
	for _, crd := range crds {
		for {
			got := &apiextensionsv1.CustomResourceDefinition{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(crd), got); err == nil && established(got) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("CRD %s not established after a minute", crd.Name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

// CRDs returns Slipway's custom resource definitions.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var out []*apiextensionsv1.CustomResourceDefinition
	err := fs.WalkDir(crdFiles, "crds", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := crdFiles.ReadFile(path)
		if err != nil {
			return err
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096).Decode(crd); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, crd)
		return nil
	})
	return out, err
}
