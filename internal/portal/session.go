package portal

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/atomicfile"
)

// Session lifetimes: a session ends after sessionIdle without a request
// and after sessionMax in any case; a sign-in link is good for LinkTTL
// and one use.
const (
	sessionIdle = time.Hour
	sessionMax  = 12 * time.Hour
	LinkTTL     = 10 * time.Minute
	cookieName  = "slipway_portal"
)

// session is a signed-in principal. Sessions live in memory: a restart of
// Slipway signs everyone out, which is safe and rarely matters.
type session struct {
	id, csrf        string
	appID, objectID string
	name            string
	created, seen   time.Time
}

// sessions are the portal's sessions by ID.
type sessions struct {
	mu  sync.Mutex
	all map[string]*session
	now func() time.Time
}

func newSessions() *sessions {
	return &sessions{all: map[string]*session{}, now: time.Now}
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// start makes a session and sets its cookie: HttpOnly (no script reads
// it), Secure (HTTPS only), SameSite=Strict (no other site's page sends
// it, the first line against cross-site requests; the CSRF token is the
// second).
func (s *sessions) start(w http.ResponseWriter, appID, objectID, name string) *session {
	now := s.now()
	ss := &session{id: randomToken(), csrf: randomToken(), appID: appID, objectID: objectID, name: name, created: now, seen: now}
	s.mu.Lock()
	for id, old := range s.all {
		if s.expired(old, now) {
			delete(s.all, id)
		}
	}
	s.all[ss.id] = ss
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: ss.id, Path: "/portal/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(sessionMax.Seconds())})
	return ss
}

func (s *sessions) expired(ss *session, now time.Time) bool {
	return now.Sub(ss.seen) > sessionIdle || now.Sub(ss.created) > sessionMax
}

// of is the request's live session, if any.
func (s *sessions) of(r *http.Request) *session {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.all[c.Value]
	if ss == nil {
		return nil
	}
	if s.expired(ss, now) {
		delete(s.all, ss.id)
		return nil
	}
	ss.seen = now
	return ss
}

// end signs a session out and clears its cookie.
func (s *sessions) end(w http.ResponseWriter, ss *session) {
	s.mu.Lock()
	delete(s.all, ss.id)
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/portal/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// validCSRF checks a write's token: the form's _csrf field or htmx's
// X-CSRF-Token header must be the session's.
func (ss *session) validCSRF(r *http.Request) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("_csrf")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(ss.csrf)) == 1
}

// A sign-in link is a random token whose digest `slipway portal` writes
// into the data directory; the server signs its holder in once as the
// principal it names and deletes it. Only whoever can read the data
// directory (the operator) can make one.
type link struct {
	AppID    string    `json:"appId"`
	ObjectID string    `json:"objectId"`
	Name     string    `json:"name"`
	Expires  time.Time `json:"expires"`
}

func linkDir(dataDir string) string { return filepath.Join(dataDir, "portal", "links") }

func linkFile(dataDir, token string) string {
	sum := sha256.Sum256([]byte(token))
	return filepath.Join(linkDir(dataDir), hex.EncodeToString(sum[:])+".json")
}

// NewLink records a one-time sign-in link for a principal and returns its
// token.
func NewLink(dataDir, appID, objectID, name string, ttl time.Duration) (string, error) {
	token := randomToken()
	b, err := json.Marshal(link{AppID: appID, ObjectID: objectID, Name: name, Expires: time.Now().Add(ttl)})
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(linkDir(dataDir), 0o700); err != nil {
		return "", fmt.Errorf("portal sign-in link: %w", err)
	}
	if err := atomicfile.Write(linkFile(dataDir, token), b, 0o600); err != nil {
		return "", fmt.Errorf("portal sign-in link: %w", err)
	}
	return token, nil
}

var errLinkInvalid = errors.New("this sign-in link is not valid: it was used already, has expired, or was never made; run `slipway portal` for a new one")

// useLink consumes a link: the first to remove its file has it, so a link
// signs in once even when two requests race.
func useLink(dataDir, token string, now time.Time) (*link, error) {
	path := linkFile(dataDir, token)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, errLinkInvalid
	}
	if err := os.Remove(path); err != nil {
		return nil, errLinkInvalid
	}
	l := &link{}
	if err := json.Unmarshal(b, l); err != nil || now.After(l.Expires) {
		return nil, errLinkInvalid
	}
	return l, nil
}

// CSRF is the session's token for its forms.
func (ss *session) CSRF() string { return ss.csrf }

// Name is who is signed in, as the header shows it.
func (ss *session) Name() string { return ss.name }
