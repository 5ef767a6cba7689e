package hosting

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// componentProbe asks the controller manager's and the scheduler's /healthz.
// Both serve it on loopback with a certificate each makes for itself at
// start, so there is no CA to check it against; nothing secret is sent and
// the answer only says whether the process is alive and working. Their
// /healthz is open to anonymous callers by default.
var componentProbe = &http.Client{
	Timeout: 2 * time.Second,
	Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     30 * time.Second,
	},
}

// ComponentHealth reports the health of the controller manager and the
// scheduler from their /healthz; a nil error means healthy. etcd needs no
// probe of its own: the API server's /readyz (Health) fails when etcd
// does, and says so.
func (c *Cluster) ComponentHealth(ctx context.Context) map[string]error {
	if c.rec.APIOnly {
		return nil
	}
	return map[string]error{
		"controller manager": c.get(ctx, componentProbe, fmt.Sprintf("https://127.0.0.1:%d/healthz", c.rec.Ports.ControllerManager)),
		"scheduler":          c.get(ctx, componentProbe, fmt.Sprintf("https://127.0.0.1:%d/healthz", c.rec.Ports.Scheduler)),
	}
}

// get fetches url with client (the API server's probe client when nil) and
// wants 200.
func (c *Cluster) get(ctx context.Context, client *http.Client, url string) error {
	_, err := c.fetch(ctx, client, url)
	return err
}

// getJSON fetches url with client and decodes its JSON answer into v.
func (c *Cluster) getJSON(ctx context.Context, client *http.Client, url string, v any) error {
	body, err := c.fetch(ctx, client, url)
	if err != nil {
		return err
	}
	return json.Unmarshal(body, v)
}

// fetch is the body of a 200 answer to a GET of url, within 2 s.
func (c *Cluster) fetch(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	if client == nil {
		var err error
		if client, err = c.probeClient(); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %d: %s", req.URL.Path, resp.StatusCode, lastLines(body))
	}
	return body, nil
}
