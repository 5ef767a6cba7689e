package hosting

import (
	"net"
	"strconv"
	"testing"
)

func TestPortAllocator(t *testing.T) {
	// A range of its own per test keeps `go test` parallel-safe.
	a := newPortAllocator(PortRange{First: 29900, Last: 29919})

	first, err := a.allocate("a", 5)
	if err != nil {
		t.Fatal(err)
	}
	second, err := a.allocate("b", 5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range append(first, second...) {
		if seen[p] {
			t.Fatalf("port %d handed out twice: %v %v", p, first, second)
		}
		if p < 29900 || p > 29919 {
			t.Fatalf("port %d outside the range", p)
		}
		seen[p] = true
	}

	// A port something else listens on is skipped.
	busy, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(a.next))
	if err != nil {
		t.Skipf("cannot occupy a port for the test: %v", err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	third, err := a.allocate("c", 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range third {
		if p == busyPort || seen[p] {
			t.Fatalf("allocated busy or taken port %d", p)
		}
	}

	// The range is exhausted: 15 held, 1 busy, 4 left.
	if _, err := a.allocate("d", 5); err == nil {
		t.Fatal("allocated more ports than the range holds")
	}

	// Released ports come back.
	a.release("a")
	if _, err := a.allocate("d", 5); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestPortAllocatorReserve(t *testing.T) {
	a := newPortAllocator(PortRange{First: 29920, Last: 29929})
	if err := a.reserve("a", 29920, 29921); err != nil {
		t.Fatal(err)
	}
	if err := a.reserve("a", 29921); err != nil {
		t.Fatalf("a cluster re-reserving its own port: %v", err)
	}
	if err := a.reserve("b", 29921, 29922); err == nil {
		t.Fatal("two clusters hold port 29921")
	}
	ps, err := a.allocate("c", 8)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p == 29920 || p == 29921 {
			t.Fatalf("allocated reserved port %d", p)
		}
	}
}
