package hosting

import (
	"fmt"
	"net"
	"strconv"
	"sync"
)

// PortRange is the range ports are allocated from. It lies below Linux's
// ephemeral range (32768-60999) so that the kernel never hands one of our
// ports to an outgoing connection while its cluster is stopped.
type PortRange struct{ First, Last int }

// DefaultPortRange is used when Options.Ports is zero.
var DefaultPortRange = PortRange{First: 20000, Last: 29999}

// portAllocator hands out ports that no other cluster of this host holds and
// that nothing else on the machine is listening on. A cluster keeps its ports
// for life, so that kubeconfigs handed out stay valid across restarts.
type portAllocator struct {
	mu       sync.Mutex
	rng      PortRange
	next     int
	reserved map[int]string // port -> owning cluster
}

func newPortAllocator(r PortRange) *portAllocator {
	return &portAllocator{rng: r, next: r.First, reserved: map[int]string{}}
}

// allocate reserves n free ports for owner.
func (a *portAllocator) allocate(owner string, n int) ([]int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	size := a.rng.Last - a.rng.First + 1
	var ports []int
	for tried := 0; len(ports) < n && tried < size; tried++ {
		p := a.next
		a.next++
		if a.next > a.rng.Last {
			a.next = a.rng.First
		}
		if _, taken := a.reserved[p]; taken || !bindable(p) {
			continue
		}
		ports = append(ports, p)
	}
	if len(ports) < n {
		return nil, fmt.Errorf("no free ports left in %d-%d", a.rng.First, a.rng.Last)
	}
	for _, p := range ports {
		a.reserved[p] = owner
	}
	return ports, nil
}

// reserve records ports that owner already holds (a cluster found on disk).
func (a *portAllocator) reserve(owner string, ports ...int) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range ports {
		if other, taken := a.reserved[p]; taken && other != owner {
			return fmt.Errorf("port %d of cluster %s is also held by cluster %s", p, owner, other)
		}
	}
	for _, p := range ports {
		a.reserved[p] = owner
	}
	return nil
}

// release frees every port owner holds.
func (a *portAllocator) release(owner string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for p, o := range a.reserved {
		if o == owner {
			delete(a.reserved, p)
		}
	}
}

// bindable reports whether nothing listens on port right now, on any IPv4
// address: an API server may listen on all of them (Options.Advertise).
func bindable(port int) bool {
	l, err := net.Listen("tcp4", net.JoinHostPort("0.0.0.0", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
