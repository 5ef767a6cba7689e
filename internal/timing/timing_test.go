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
