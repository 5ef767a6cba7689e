// Package e2e drives a real `slipway serve` process from the outside, with
// the official Azure SDK for Go, plain HTTPS and client-go, as users do.
package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/slipway-dev/slipway/internal/app"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// server is one `slipway serve` shared by the package's tests.
type server struct {
	t       testing.TB
	bin     string
	dataDir string
	listen  string
	cmd     *exec.Cmd
	conn    *app.Connection
	log     *os.File
	// args, if set, replace the shared server's port range: a host of a
	// fleet takes its range from its join file.
	args []string
}

var (
	shared     *server
	sharedErr  error
	sharedOnce sync.Once
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.stop()
		if code == 0 && os.Getenv("SLIPWAY_E2E_KEEP") == "" {
			os.RemoveAll(shared.dataDir)
		} else {
			fmt.Fprintf(os.Stderr, "kept the run's data directory (serve.log is there): %s\n", shared.dataDir)
		}
	}
	os.Exit(code)
}

// serve returns the shared server, starting it on first use.
func serve(t testing.TB) *server {
	t.Helper()
	if testing.Short() {
		t.Skip("starts slipway serve")
	}
	sharedOnce.Do(func() {
		bin, err := testenv.Binary()
		if err != nil {
			sharedErr = err
			return
		}
		dir, err := os.MkdirTemp("", "slipway-e2e-")
		if err != nil {
			sharedErr = err
			return
		}
		shared = &server{bin: bin, dataDir: dir, listen: "127.0.0.1:" + strconv.Itoa(freePort(t))}
		sharedErr = shared.start()
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs slipway serve and waits until it answers.
func (s *server) start() error {
	logFile, err := os.OpenFile(filepath.Join(s.dataDir, "serve.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	s.log = logFile
	// Tests run simulated VMs at 1/200 of real time; benchmarks may ask
	// for another scale.
	scale := cmp.Or(os.Getenv("SLIPWAY_E2E_TIME_SCALE"), "0.005")
	args := s.args
	if args == nil {
		args = []string{"--first-port", "24000", "--last-port", "24999"}
	}
	s.cmd = exec.Command(s.bin, append([]string{"serve", "--data-dir", s.dataDir, "--listen", s.listen, "--time-scale", scale,
		"--health-unknown-after", healthUnknownAfter.String(), "--cost-sample-interval", "1s"}, args...)...)
	if addr := os.Getenv("SLIPWAY_E2E_PPROF"); addr != "" {
		// Benchmarks profile serve through it: go tool pprof http://ADDR/debug/pprof/profile
		s.cmd.Args = append(s.cmd.Args, "--pprof-listen", addr)
	}
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if conn, err := app.ReadConnection(filepath.Join(s.dataDir, "connection.json")); err == nil {
			if resp, err := s.httpClientFor(conn).Get(conn.ARMEndpoint + "metadata/endpoints?api-version=2015-01-01"); err == nil {
				resp.Body.Close()
				s.conn = conn
				return nil
			}
		}
		if s.cmd.ProcessState != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	log, _ := os.ReadFile(logFile.Name())
	return fmt.Errorf("slipway serve did not come up; its log:\n%s", log)
}

// kill ends the server as kill -9 would.
func (s *server) kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
}

func (s *server) stop() {
	if s.cmd != nil && s.cmd.ProcessState == nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			s.kill()
		}
	}
	if s.log != nil {
		s.log.Close()
	}
}

// httpClientFor trusts conn's CA, as clients of Slipway must.
func (s *server) httpClientFor(conn *app.Connection) *http.Client {
	hc, err := conn.HTTPClient()
	if err != nil {
		return http.DefaultClient // not written yet: the caller retries
	}
	return hc
}

func (s *server) httpClient() *http.Client { return s.httpClientFor(s.conn) }

// cloudConfig points the SDK at Slipway.
func (s *server) cloudConfig() cloud.Configuration { return s.conn.Cloud() }

// credential is an azidentity client-secret credential against Slipway's
// token endpoint, in the tenant (Entra ID) shape.
func (s *server) credential(t testing.TB, secret string) azcore.TokenCredential {
	t.Helper()
	cred, err := azidentity.NewClientSecretCredential(s.conn.TenantID, s.conn.ClientID, secret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions:            policy.ClientOptions{Cloud: s.cloudConfig(), Transport: s.httpClient()},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

func (s *server) clientOptions() *arm.ClientOptions {
	return &arm.ClientOptions{ClientOptions: policy.ClientOptions{Cloud: s.cloudConfig(), Transport: s.httpClient()}}
}

// token gets an access token with the bootstrap principal.
func (s *server) token(t testing.TB) string {
	t.Helper()
	tok, err := s.credential(t, s.conn.ClientSecret).GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{s.conn.Audience + "/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

// do sends a raw ARM request and decodes the ARM error body, if any.
func (s *server) do(t testing.TB, method, path, token string, body any) (int, armError) {
	t.Helper()
	var reader *jsonReader
	if body != nil {
		reader = newJSONReader(body)
	}
	req, err := http.NewRequest(method, s.conn.ARMEndpoint+path, reader.orNil())
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error armError `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error
}

type armError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Target  string `json:"target"`
}

// waitSpare waits until serve has a spare control plane ready: since its
// last start (a restarted serve starts its spare again and says so once
// more), its log says more were made ready than claimed. A create figure
// that means the fast path is taken only once serve says it is there.
func (s *server) waitSpare(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		data, err := os.ReadFile(filepath.Join(s.dataDir, "serve.log"))
		if err != nil {
			t.Fatal(err)
		}
		log := string(data)
		if i := strings.LastIndex(log, serveStarting); i >= 0 {
			log = log[i:]
		}
		ready, claimed := strings.Count(log, "Spare control plane ready"), strings.Count(log, "Control plane started from a spare")
		if ready > claimed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve has had no spare control plane ready for 3 minutes (%d made ready, %d claimed)", ready, claimed)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// serveStarting is the first line serve prints at each start.
const serveStarting = "Starting the management API server"
