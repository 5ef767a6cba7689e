# Slipway's build. `go build` does the caching: the first build compiles
# Kubernetes and etcd (about 10 minutes on 2 cores), later ones reuse the Go
# build cache and take seconds.

BIN        := bin/slipway
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
KUBE       := $(shell awk '$$1 == "k8s.io/kubernetes" { print $$2 }' go.mod)
KUBE_MINOR := $(word 2,$(subst ., ,$(KUBE)))
# The upstream servers report the Kubernetes version they were built from
# (kubectl version, /version, feature-gate defaults), so stamp it as
# Kubernetes' own build does.
LDFLAGS := -X github.com/slipway-dev/slipway/internal/version.Version=$(VERSION) \
	-X k8s.io/component-base/version.gitVersion=$(KUBE) \
	-X k8s.io/component-base/version.gitMajor=1 \
	-X k8s.io/component-base/version.gitMinor=$(KUBE_MINOR) \
	-X k8s.io/component-base/version.gitTreeState=clean

# The other Kubernetes releases Slipway serves, each its own build of kube/
# (a Go module carries one k8s.io/kubernetes): kube/go.mod is the newest,
# kube/go.<version>.mod the others. slipway runs bin/kube-<version> for a
# cluster on that release; internal/version lists them, and a test checks
# the list against these files.
KUBE_EXTRA  := 1.35.4 1.36.1 1.37.2
KUBE_NEWEST := 1.37.2
KUBE_BINS   := $(addprefix bin/kube-,$(KUBE_EXTRA))
kube_ldflags = -X k8s.io/component-base/version.gitVersion=v$(1) \
	-X k8s.io/component-base/version.gitMajor=1 \
	-X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(1))) \
	-X k8s.io/component-base/version.gitTreeState=clean

DATA_DIR ?= $(HOME)/.slipway

.PHONY: build run test bench bench-density bench-arm bench-scale bench-upgrade bench-versions bench-storage bench-autoscale bench-keyvault bench-cost bench-policy bench-portal bench-churn bench-fleet

build: $(KUBE_BINS)
	@echo "building $(BIN) (Kubernetes $(KUBE); the first build takes about 10 minutes)"
	go build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/slipway

# go build decides what is stale; make only names the binaries. The first
# build of each release compiles its Kubernetes, about 6 minutes on 2 cores.
$(KUBE_BINS): bin/kube-%: FORCE
	@echo "building $@ (Kubernetes $*)"
	cd kube && go build -modfile=$(if $(filter $*,$(KUBE_NEWEST)),go.mod,go.$*.mod) -ldflags '$(call kube_ldflags,$*)' -o ../$@ .

.PHONY: FORCE
FORCE:

run: build
	$(BIN) serve --data-dir $(DATA_DIR)

# Integration tests start real control planes from the built binary.
test: build bin/csi-sanity
	go vet ./...
	SLIPWAY_BINARY=$(CURDIR)/$(BIN) SLIPWAY_CSI_SANITY=$(CURDIR)/bin/csi-sanity go test -count=1 -timeout 40m ./...

# The CSI conformance suite, at the version issue 13 names. It is its own
# program (its module needs CSI spec v1.13, whose Go types drop a field the
# kubelet code in our binary still reads), so it is installed, not linked.
CSI_TEST_VERSION := v5.6.0
bin/csi-sanity: Makefile
	GOBIN=$(CURDIR)/bin go install github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$(CSI_TEST_VERSION)
	touch $@

# Issue 18's five figures in one run, each next to its same-run reference:
# ARM GET p99, create to Succeeded, 0 -> 1000 nodes, idle CPU of 1000 nodes,
# node image upgrades of 100 nodes; and serve's memory at 1000 nodes.
bench: build
	SLIPWAY_BINARY=$(CURDIR)/$(BIN) go test -run '^$$' -bench BenchmarkSpeed -benchtime 1x -timeout 60m ./test/e2e

# Memory and idle CPU per control plane.
bench-density: build
	$(BIN) bench cluster --clusters 5 --nodes 10

# ARM figures: PUT to Succeeded of a 3-node cluster, GET latency under load.
bench-arm: build
	SLIPWAY_BINARY=$(CURDIR)/$(BIN) go test -run '^$$' -bench BenchmarkCreateCluster -benchtime 5x ./test/e2e
	SLIPWAY_BINARY=$(CURDIR)/$(BIN) go test -run '^$$' -bench BenchmarkGetManagedCluster -benchtime 3000x ./test/e2e

# A User pool 0 -> 100 -> 1000 -> 0: nodes per second, and serve's memory.
bench-scale: build
	SLIPWAY_BINARY=$(CURDIR)/$(BIN) go test -run '^$$' -bench BenchmarkScalePool -benchtime 1x -timeout 30m ./test/e2e

# Node image upgrades of 10, 100 and 500 nodes at maxSurge 1, 33% and 100%,
# against the least time the VM timing model allows.
bench-upgrade: build
	SLIPWAY_E2E_TIME_SCALE=0.01 SLIPWAY_BINARY=$(CURDIR)/$(BIN) go test -run '^$$' -bench BenchmarkNodeImageUpgrade -benchtime 1x -timeout 90m ./test/e2e

# Kubernetes version upgrades, 1.35.4 to 1.36.3, three times: the control
# plane's upgrade time and API unavailability, a 10-node pool's upgrade
# against the timing model's least; medians.
bench-versions: build
	SLIPWAY_E2E_TIME_SCALE=0.01 SLIPWAY_BINARY=$(CURDIR)/$(BIN) go test -run '^$$' -bench BenchmarkVersionUpgrade -benchtime 3x -timeout 30m ./test/e2e

# Disks: claim to attached (median), and 100 disks following their pods
# through a drain, against the timing model's minimum.
bench-storage: build
	SLIPWAY_BINARY=$(CURDIR)/$(BIN) go test -run '^$$' -bench BenchmarkDiskVolumes -benchtime 5x -timeout 30m ./test/e2e

# The cluster autoscaler: pods Pending to Running on nodes it adds (median),
# against the node time; one loop's CPU over 1,000 nodes and 5,000 pods.
bench-autoscale: build
	SLIPWAY_BINARY=$(CURDIR)/$(BIN) go test -run '^$$' -bench BenchmarkAutoscaleUp -benchtime 5x -timeout 30m ./test/e2e
	go test -run '^$$' -bench BenchmarkRunOnce -benchtime 3x -timeout 30m ./internal/autoscaler

# Key Vault: GetSecret latency from 16 concurrent azsecrets clients, and
# the Secrets Provider add-on's time from a pod bound to its Secret synced.
bench-keyvault: build
	SLIPWAY_BINARY=$(CURDIR)/$(BIN) go test -run '^$$' -bench BenchmarkSecretGet -benchtime 200x -timeout 30m ./test/e2e
	SLIPWAY_BINARY=$(CURDIR)/$(BIN) go test -run '^$$' -bench BenchmarkSecretsProviderMount -benchtime 20x -timeout 30m ./test/e2e

# Azure Policy: one audit of the container limits rule over 5,000 pods, and
# the time from an assignment's PUT to its enforcement in a cluster.
bench-policy: build
	go test -run '^$$' -bench BenchmarkAudit5000Pods -benchtime 5x -count 3 ./internal/policy
	SLIPWAY_BINARY=$(CURDIR)/$(BIN) go test -run '^$$' -bench BenchmarkPolicyEnforcement -benchtime 9x -timeout 30m ./test/e2e

# The portal's pages of a cluster of 1,000 nodes and 5,000 pods.
bench-portal: build
	SLIPWAY_BINARY=$(CURDIR)/$(BIN) go test -run '^$$' -bench BenchmarkPortalPages -benchtime 20x -timeout 40m ./test/e2e

# Issue 19: create and delete CHURN clusters one after another; what is
# left in the management plane and the data directory, by part. Set
# SLIPWAY_CHURN_SETTLE=25m to also wait for the datastore's database to
# be compacted and defragmented back, and report the directory then.
CHURN ?= 200
bench-churn: build
	SLIPWAY_BINARY=$(CURDIR)/$(BIN) go test -v -run '^$$' -bench BenchmarkClusterChurn -benchtime $(CHURN)x -timeout 120m ./test/e2e

# A fleet of hosts: failover (kill -9 of a cluster's host to the cluster
# answering on another) and clusters created a minute by one host and by
# two, each three times.
bench-fleet: build
	SLIPWAY_BINARY=$(CURDIR)/$(BIN) go test -run '^$$' -bench 'BenchmarkFleet(Failover|Create)' -benchtime 3x -timeout 30m ./test/e2e

# Cost Management queries over a month of usage records.
bench-cost:
	go test -run '^$$' -bench BenchmarkEvaluate -benchtime 5x ./internal/metering
