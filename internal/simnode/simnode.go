// Package simnode runs simulated nodes in a hosted cluster: Node objects that
// Slipway registers and that KWOK's controllers (embedded as a library, one
// instance per cluster) keep alive the way a kubelet would: node leases
// renewed, status Ready, and pods bound to the node moved to Running and, when
// deleted, removed.
//
// Only nodes carrying ManagedAnnotation are touched, so a cluster can mix
// simulated nodes with anything else that registers itself.
package simnode

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodeheartbeat "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat-with-lease"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
	"sigs.k8s.io/kwok/pkg/apis/internalversion"
	kwokclient "sigs.k8s.io/kwok/pkg/client/clientset/versioned"
	"sigs.k8s.io/kwok/pkg/config"
	kwokcontrollers "sigs.k8s.io/kwok/pkg/kwok/controllers"
	kwoklog "sigs.k8s.io/kwok/pkg/log"
	"sigs.k8s.io/kwok/pkg/utils/client"

	"github.com/slipway-dev/slipway/internal/nodepods"
)

const (
	// ManagedAnnotation marks a node as simulated by Slipway; KWOK manages
	// exactly the nodes that carry it.
	ManagedAnnotation = "slipway.dev/simulated"

	// notReadyReason and notReadyMessage drive the stage in
	// node-not-ready.yaml.
	notReadyReason  = "slipway.dev/not-ready-reason"
	notReadyMessage = "slipway.dev/not-ready-message"

	// nodeInitializeStage is the name of KWOK's stage that makes nodes Ready.
	nodeInitializeStage = "node-initialize"

	// ReadyAtAnnotation holds the time (RFC 3339) a registered node becomes
	// Ready: the simulated VM is still provisioning and booting until then.
	ReadyAtAnnotation = "slipway.dev/ready-at"

	// VolumesMountedAnnotation on a pod says its claims' volumes are
	// attached and mounted on its node. A pod with claims starts only
	// then, as a kubelet starts no container before the pod's volumes
	// are mounted; the storage controllers set it (internal/storage).
	VolumesMountedAnnotation = "slipway.dev/volumes-mounted"

	// SecretsMountedAnnotation on a pod says its Secrets Store CSI volumes
	// (driver secrets-store.csi.k8s.io) are mounted: the provider fetched
	// every object of their SecretProviderClasses. Such a pod starts only
	// then; internal/secretsstore sets it.
	SecretsMountedAnnotation = "slipway.dev/secrets-mounted"

	// SecretsStoreDriver is the Secrets Store CSI driver's name.
	SecretsStoreDriver = "secrets-store.csi.k8s.io"

	// podReadyStage is the name of KWOK's stage that starts pods.
	podReadyStage = "pod-ready"
)

// Options configure the simulated kubelets of one cluster.
type Options struct {
	// Kubeconfig is the path of a kubeconfig with rights over nodes, leases,
	// pods and events (the cluster's admin kubeconfig).
	Kubeconfig string
	// PodCIDR is where simulated pods get their IPs from.
	PodCIDR string
	// LeaseDurationSeconds is the node lease duration; KWOK renews leases
	// well within it. Zero means Kubernetes' default of 40.
	LeaseDurationSeconds uint
	// Log receives KWOK's log; nil discards it.
	Log io.Writer
}

// How many requests each of KWOK's queues keeps in flight. A real node's
// kubelet renews its own lease, so a thousand nodes renew a thousand ways
// at once; these bound the simulation's concurrency well above what a
// loaded API server takes to answer (a lease update under a 1,000-node
// scale-out waits ~150 ms), and cost an idle goroutine each.
const (
	playParallelism  = 64
	leaseParallelism = 128
)

// Kubelets simulates the kubelets of one cluster's nodes.
type Kubelets struct {
	client kubernetes.Interface
	cancel context.CancelFunc
	done   chan struct{}
}

// Start starts KWOK's controllers for a cluster. They run until Stop or
// until ctx ends.
func Start(ctx context.Context, opts Options) (*Kubelets, error) {
	if opts.PodCIDR == "" {
		opts.PodCIDR = "10.244.0.0/16"
	}
	if opts.LeaseDurationSeconds == 0 {
		opts.LeaseDurationSeconds = 40
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	stages, err := defaultStages()
	if err != nil {
		return nil, err
	}
	clientset, err := client.NewClientset("", opts.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("simulated kubelets: %w", err)
	}
	restConfig, err := clientset.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("simulated kubelets: %w", err)
	}
	dynamicClient, err := clientset.ToDynamicClient()
	if err != nil {
		return nil, fmt.Errorf("simulated kubelets: %w", err)
	}
	restMapper, err := clientset.ToRESTMapper()
	if err != nil {
		return nil, fmt.Errorf("simulated kubelets: %w", err)
	}
	restClient, err := rest.RESTClientFor(restConfig)
	if err != nil {
		return nil, fmt.Errorf("simulated kubelets: %w", err)
	}
	typedClient, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, fmt.Errorf("simulated kubelets: %w", err)
	}
	kwokClient, err := kwokclient.NewForConfig(restConfig)
	if err != nil {
		return nil, fmt.Errorf("simulated kubelets: %w", err)
	}
	host, _ := os.Hostname()
	ctrl, err := kwokcontrollers.NewController(kwokcontrollers.Config{
		Clock:                             clock.RealClock{},
		DynamicClient:                     dynamicClient,
		RESTClient:                        restClient,
		RESTMapper:                        restMapper,
		ImpersonatingDynamicClient:        clientset.ToImpersonatingDynamicClient(),
		ImpersonatingTypedClient:          clientset.ToImpersonatingTypedClient(),
		TypedClient:                       guardPodDeletes(typedClient),
		TypedKwokClient:                   kwokClient,
		ManageNodesWithAnnotationSelector: ManagedAnnotation + "=true",
		CIDR:                              opts.PodCIDR,
		LocalStages:                       stages,
		// Each worker waits out one request at a time, so the
		// parallelism, not the API server, bounded how fast nodes were
		// made Ready and leases renewed: a 1,000-node pool renews 100
		// leases a second, and at 16 workers a loaded API server's
		// latency let them lapse, so that the node lifecycle controller
		// marked Ready nodes NotReady (see playParallelism).
		NodePlayStageParallelism:  playParallelism,
		PodPlayStageParallelism:   playParallelism,
		NodeLeaseParallelism:      leaseParallelism,
		PodsOnNodeSyncParallelism: 1,
		NodeLeaseDurationSeconds:  opts.LeaseDurationSeconds,
		ID:                        host,
	})
	if err != nil {
		return nil, fmt.Errorf("simulated kubelets: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	runCtx = kwoklog.NewContext(runCtx, kwoklog.NewLogger(opts.Log, kwoklog.LevelInfo))
	if err := ctrl.Start(runCtx); err != nil {
		cancel()
		return nil, fmt.Errorf("starting simulated kubelets: %w", err)
	}
	k := &Kubelets{client: typedClient, cancel: cancel, done: make(chan struct{})}
	var once sync.Once
	go func() {
		select {
		case <-ctx.Done():
		case <-runCtx.Done():
		}
		once.Do(cancel)
		close(k.done)
	}()
	return k, nil
}

// Stop stops the simulated kubelets. Nodes stay registered; their leases
// stop being renewed, as when a machine is switched off.
func (k *Kubelets) Stop() {
	k.cancel()
	<-k.done
}

//go:embed node-not-ready.yaml
var nodeNotReadyStage string

// stagesOnce parses KWOK's embedded stage YAML once per process.
var stagesOnce = sync.OnceValues(parseStages)

func defaultStages() (map[internalversion.StageResourceRef][]*internalversion.Stage, error) {
	return stagesOnce()
}

func parseStages() (map[internalversion.StageResourceRef][]*internalversion.Stage, error) {
	node := []string{nodefast.DefaultNodeInit, nodeheartbeat.DefaultNodeHeartbeatWithLease, nodeNotReadyStage}
	pod := []string{podfast.DefaultPodReady, podfast.DefaultPodComplete, podfast.DefaultPodDelete}
	out := map[internalversion.StageResourceRef][]*internalversion.Stage{}
	for _, group := range []struct {
		ref  internalversion.StageResourceRef
		yaml []string
	}{
		{internalversion.StageResourceRef{APIGroup: "v1", Kind: "Node"}, node},
		{internalversion.StageResourceRef{APIGroup: "v1", Kind: "Pod"}, pod},
	} {
		for _, y := range group.yaml {
			stage, err := config.UnmarshalWithType[*internalversion.Stage](y)
			if err != nil {
				return nil, fmt.Errorf("parsing KWOK stage: %w", err)
			}
			if stage.Name == nodeInitializeStage {
				// A booting VM's node turns Ready when its boot is done.
				stage.Spec.Delay = &internalversion.StageDelay{DurationFrom: &internalversion.ExpressionFrom{
					JQ: &internalversion.ExpressionJQ{Expression: fmt.Sprintf(".metadata.annotations[%q]", ReadyAtAnnotation)},
				}}
				// A node Slipway has marked NotReady must stay so.
				stage.Spec.Selector.MatchExpressions = append(stage.Spec.Selector.MatchExpressions,
					internalversion.MatchExpression{JQ: &internalversion.SelectorJQ{
						Key:      fmt.Sprintf(".metadata.annotations[%q]", notReadyReason),
						Operator: internalversion.SelectorOpDoesNotExist,
					}})
			}
			if stage.Name == podReadyStage {
				// A pod with claims waits for its volumes.
				stage.Spec.Selector.MatchExpressions = append(stage.Spec.Selector.MatchExpressions,
					internalversion.MatchExpression{JQ: &internalversion.SelectorJQ{
						Key: fmt.Sprintf(`([.spec.volumes[]? | select(.persistentVolumeClaim != null or .ephemeral != null)] | length == 0)`+
							` or .metadata.annotations[%q] == "true"`, VolumesMountedAnnotation),
						Operator: internalversion.SelectorOpIn,
						Values:   []string{"true"},
					}},
					// And one with Secrets Store volumes for its secrets.
					internalversion.MatchExpression{JQ: &internalversion.SelectorJQ{
						Key: fmt.Sprintf(`([.spec.volumes[]? | select(.csi.driver? == %q)] | length == 0)`+
							` or .metadata.annotations[%q] == "true"`, SecretsStoreDriver, SecretsMountedAnnotation),
						Operator: internalversion.SelectorOpIn,
						Values:   []string{"true"},
					}})
			}
			out[group.ref] = append(out[group.ref], stage)
		}
	}
	return out, nil
}

// Node describes a simulated node to register.
type Node struct {
	Name        string
	Labels      map[string]string
	Annotations map[string]string
	Taints      []corev1.Taint
	// Capacity and Allocatable are the node's resources; Allocatable
	// defaults to Capacity.
	Capacity    corev1.ResourceList
	Allocatable corev1.ResourceList
	NodeInfo    corev1.NodeSystemInfo
	ProviderID  string
	// InternalIP is the node's address, if it has one.
	InternalIP string
	// ReadyAt is when the node turns Ready; zero means at once.
	ReadyAt time.Time
}

// Register creates the node, marked as simulated. KWOK makes it Ready.
// Registering a node that already exists is an error.
func (k *Kubelets) Register(ctx context.Context, n Node) error {
	if n.Name == "" {
		return errors.New("registering simulated node: no name")
	}
	annotations := map[string]string{ManagedAnnotation: "true"}
	if !n.ReadyAt.IsZero() {
		annotations[ReadyAtAnnotation] = n.ReadyAt.UTC().Format(time.RFC3339Nano)
	}
	for key, v := range n.Annotations {
		annotations[key] = v
	}
	allocatable := n.Allocatable
	if allocatable == nil {
		allocatable = n.Capacity
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: n.Labels, Annotations: annotations},
		Spec:       corev1.NodeSpec{Taints: n.Taints, ProviderID: n.ProviderID},
		Status: corev1.NodeStatus{
			Capacity:    n.Capacity,
			Allocatable: allocatable,
			NodeInfo:    n.NodeInfo,
			Phase:       corev1.NodePending,
		},
	}
	if n.InternalIP != "" {
		node.Status.Addresses = []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: n.InternalIP},
			{Type: corev1.NodeHostName, Address: n.Name},
		}
	}
	if _, err := k.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("registering simulated node %s: %w", n.Name, err)
	}
	return nil
}

// Remove deletes the node. Removing a node that does not exist is not an
// error.
//
// The pods still bound to it die with the VM. Pod GC would delete them
// only after its 40 s quarantine, and until then their controllers count
// them as running: a pod that tolerates the cordon (konnectivity-agent)
// may be placed on the node after its drain, and its Deployment would be a
// replica short for that long. Deleting them with the node is what Pod GC
// ends with, sooner.
func (k *Kubelets) Remove(ctx context.Context, name string) error {
	err := k.client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing simulated node %s: %w", name, err)
	}
	if err := nodepods.DeleteAll(ctx, k.client, name); err != nil {
		return fmt.Errorf("removed node %s: %w", name, err)
	}
	return nil
}

// SetNotReady makes the node report Ready=False with reason and message, as a
// kubelet does when its node fails, until SetReady.
func (k *Kubelets) SetNotReady(ctx context.Context, name, reason, message string) error {
	if reason == "" {
		reason = "NodeNotReady"
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q,%q:%q}}}`,
		notReadyReason, reason, notReadyMessage, message)
	if _, err := k.client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("marking node %s NotReady: %w", name, err)
	}
	return nil
}

// SetReady undoes SetNotReady: the node reports Ready again.
func (k *Kubelets) SetReady(ctx context.Context, name string) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:null,%q:null}}}`, notReadyReason, notReadyMessage)
	if _, err := k.client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("marking node %s Ready: %w", name, err)
	}
	return nil
}

// Boot restarts a node's kubelet, as a VM reboot or reimage does: the node
// reports NotReady (reason KubeletNotReady) with a new boot ID until
// readyAt, when KWOK's node-initialize stage makes it Ready again. labels
// are merged into the node's, annotations set (a nil value removes one),
// and nodeInfo, if given, replaces what the node reports.
func (k *Kubelets) Boot(ctx context.Context, name string, readyAt time.Time, labels map[string]string, annotations map[string]*string, nodeInfo *corev1.NodeSystemInfo) error {
	meta := map[string]any{ReadyAtAnnotation: readyAt.UTC().Format(time.RFC3339Nano)}
	for key, v := range annotations {
		if v == nil {
			meta[key] = nil
		} else {
			meta[key] = *v
		}
	}
	metadata := map[string]any{"annotations": meta}
	// In a merge patch a null "labels" deletes them all: a reboot, which
	// changes no label, must not send one.
	if labels != nil {
		metadata["labels"] = labels
	}
	patch, err := json.Marshal(map[string]any{"metadata": metadata})
	if err != nil {
		return err
	}
	if _, err := k.client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("booting node %s: %w", name, err)
	}
	bootID := string(uuid.NewUUID())
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := k.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		for i, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				node.Status.Conditions[i] = corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionFalse,
					Reason: "KubeletNotReady", Message: "the node is rebooting", LastHeartbeatTime: now, LastTransitionTime: now}
			}
		}
		if nodeInfo != nil {
			node.Status.NodeInfo = *nodeInfo
		}
		node.Status.NodeInfo.BootID = bootID
		_, err = k.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("booting node %s: %w", name, err)
	}
	return nil
}
