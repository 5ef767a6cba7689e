package timing

import (
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
)

func TestModel(t *testing.T) {
	eph, man := armcontainerservice.OSDiskTypeEphemeral, armcontainerservice.OSDiskTypeManaged
	real := Model{Scale: 1}
	if got := real.NodeReady(man); got != 135*time.Second {
		t.Errorf("real Managed node: %s", got)
	}
	if real.NodeReady(eph) >= real.NodeReady(man) || real.Reimage(eph) >= real.Reimage(man) {
		t.Error("Ephemeral is not faster than Managed")
	}
	if got := (Model{Scale: DefaultScale}).NodeReady(man); got > 2*time.Second {
		t.Errorf("default scale: a node takes %s, want about two seconds at most", got)
	}
}

func TestTimeout(t *testing.T) {
	for _, c := range []struct {
		scale   float64
		d, want time.Duration
	}{
		{0.005, 30 * time.Minute, MinTimeout},        // AKS's default drain timeout in the tests
		{0.01, 240 * time.Minute, 144 * time.Second}, // scaled past the floor
		{1, 30 * time.Minute, 30 * time.Minute},      // real time
		{0.01, 10 * time.Second, 10 * time.Second},   // the floor never lengthens a timeout
	} {
		if got := (Model{Scale: c.scale}).Timeout(c.d); got != c.want {
			t.Errorf("Timeout(%s) at scale %g = %s, want %s", c.d, c.scale, got, c.want)
		}
	}
}
