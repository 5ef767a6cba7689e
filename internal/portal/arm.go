package portal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// The portal is an ARM client, as Azure's is: every page reads and every
// action writes through Slipway's own ARM handler, in process, with the
// official SDK and an access token of the signed-in principal. So the
// portal checks nothing itself: roles, validation, operations and their
// errors are ARM's, and a refusal reads as it does in az.

// Tokens issues access tokens for ARM's audience.
type Tokens interface {
	Issue(tenantID, appID, objectID, audience string) (string, time.Time, error)
}

// inProcess is an azcore transport that hands each request to ARM's
// handler and records the answer.
type inProcess struct{ handler http.Handler }

func (t inProcess) Do(req *http.Request) (*http.Response, error) {
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	if req.Body == nil {
		req.Body = http.NoBody
	}
	req.RequestURI = req.URL.RequestURI()
	req.RemoteAddr = "portal"
	t.handler.ServeHTTP(rec, req)
	return &http.Response{
		StatusCode: rec.status, Status: http.StatusText(rec.status), Header: rec.header,
		Body: io.NopCloser(&rec.body), ContentLength: int64(rec.body.Len()), Request: req,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}, nil
}

// recorder is the http.ResponseWriter of an in-process request.
type recorder struct {
	header      http.Header
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

// principalCredential is a session's azcore credential: tokens issued by
// Slipway's signer for the principal, as its token endpoint would.
type principalCredential struct {
	tokens           Tokens
	tenant, audience string
	appID, objectID  string
}

func (c principalCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, exp, err := c.tokens.Issue(c.tenant, c.appID, c.objectID, c.audience)
	if err != nil {
		return azcore.AccessToken{}, err
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: exp}, nil
}

// clientOptions point the SDK at Slipway's ARM, in process.
func (p *Portal) clientOptions() *arm.ClientOptions {
	return &arm.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: inProcess{p.o.ARM},
		Cloud: cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: p.o.BaseURL, Audience: p.o.Audience},
		}},
		Retry:     policy.RetryOptions{MaxRetries: -1},
		Telemetry: policy.TelemetryOptions{ApplicationID: "slipway-portal"},
	}}
}

func (p *Portal) credential(ss *session) principalCredential {
	return principalCredential{tokens: p.o.Tokens, tenant: p.o.TenantID, audience: p.o.Audience, appID: ss.appID, objectID: ss.objectID}
}

// armMessage is what a user is told of an ARM error: its code and
// message, as az prints them.
func armMessage(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		body, msg := re.RawResponse, re.ErrorCode
		if body != nil && body.Body != nil {
			b, _ := io.ReadAll(body.Body)
			if m := armErrorMessage(b); m != "" {
				msg = "(" + re.ErrorCode + ") " + m
			}
		}
		return msg
	}
	return err.Error()
}

// armErrorMessage is the message of an ARM error body.
func armErrorMessage(b []byte) string {
	var e struct {
		Error struct{ Message string } `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	return e.Error.Message
}

// forbidden says whether ARM refused for want of a role.
func forbidden(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusForbidden
}
