package app

import (
	"context"
	"log/slog"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/slipway-dev/slipway/internal/autoscaler"
	"github.com/slipway-dev/slipway/internal/controller"
	"github.com/slipway-dev/slipway/internal/hosting"
	"github.com/slipway-dev/slipway/internal/nodeimage"
)

// startAutoscaler runs a started cluster's cluster autoscaler, as AKS runs
// it in the managed control plane; it idles while no pool autoscales.
func startAutoscaler(ctx context.Context, c *hosting.Cluster, reader client.Client, images *nodeimage.Catalog) (func(), error) {
	cs, err := c.AdminClient()
	if err != nil {
		return nil, err
	}
	// Its own logger: not the reconcile's that started the cluster.
	ctx = klog.NewContext(ctx, logr.FromSlogHandler(slog.Default().Handler()).WithValues("cluster", c.ID(), "component", "cluster-autoscaler"))
	return autoscaler.Start(ctx, cs, &controller.AutoscaledPools{Client: reader, Images: images, Cluster: c.ID()})
}
