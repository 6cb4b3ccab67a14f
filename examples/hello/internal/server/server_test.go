package server

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func newTestServer(t *testing.T, opts Options) (*httptest.Server, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	opts.Logger = slog.New(slog.NewJSONHandler(&syncWriter{w: &logs}, nil))
	if opts.Version == "" {
		opts.Version = "1.2.3"
	}
	if opts.Environment == "" {
		opts.Environment = "test"
	}
	if opts.Greeting == "" {
		opts.Greeting = "Hello, test!"
	}
	ts := httptest.NewServer(New(opts))
	t.Cleanup(ts.Close)
	return ts, &logs
}

// syncWriter: handlers log from server goroutines while the test may read.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func get(t *testing.T, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestHealthz(t *testing.T) {
	ts, logs := newTestServer(t, Options{Version: "1.2.3", Environment: "prod"})
	resp, body := get(t, ts.URL+"/healthz", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content-type %q", ct)
	}
	var h map[string]string
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	want := map[string]string{"status": "ok", "version": "1.2.3", "environment": "prod"}
	if len(h) != len(want) {
		t.Fatalf("got %v, want %v", h, want)
	}
	for k, v := range want {
		if h[k] != v {
			t.Fatalf("got %v, want %v", h, want)
		}
	}

	id := resp.Header.Get(RequestIDHeader)
	if !uuidRE.MatchString(id) {
		t.Fatalf("request id %q is not a v4 UUID", id)
	}
	ts.Close() // wait for the handler (and its log line) to finish
	var rec map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(logs.Bytes()), &rec); err != nil {
		t.Fatalf("log %q: %v", logs.String(), err)
	}
	if rec["msg"] != "request" || rec["request_id"] != id || rec["path"] != "/healthz" || rec["status"] != float64(200) || rec["method"] != "GET" {
		t.Fatalf("unexpected log record %v", rec)
	}
}

func TestRequestIDsAreUniqueAndNotFromClient(t *testing.T) {
	ts, _ := newTestServer(t, Options{})
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		resp, _ := get(t, ts.URL+"/healthz", http.Header{RequestIDHeader: {"client-chosen"}})
		id := resp.Header.Get(RequestIDHeader)
		if id == "client-chosen" || seen[id] {
			t.Fatalf("bad id %q", id)
		}
		seen[id] = true
	}
}

func TestRoot(t *testing.T) {
	ts, _ := newTestServer(t, Options{Greeting: "Hallo, Welt!"})
	resp, body := get(t, ts.URL+"/", nil)
	if resp.StatusCode != 200 || body != "Hallo, Welt!\n" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("status %d body %q ct %q", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
}

func TestVersion(t *testing.T) {
	ts, _ := newTestServer(t, Options{Version: "9.8.7"})
	resp, body := get(t, ts.URL+"/version", nil)
	var v VersionInfo
	if err := json.Unmarshal([]byte(body), &v); err != nil || resp.StatusCode != 200 || v.Version != "9.8.7" || v.Go == "" {
		t.Fatalf("status %d body %q err %v", resp.StatusCode, body, err)
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	ts, _ := newTestServer(t, Options{})
	for _, p := range []string{"/nope", "/healthz/x", "/admin"} {
		if resp, _ := get(t, ts.URL+p, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", p, resp.StatusCode)
		}
	}
	resp, err := http.Post(ts.URL+"/healthz", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: status %d, want 405", resp.StatusCode)
	}
	resp, err = http.Head(ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD /healthz: status %d, want 200", resp.StatusCode)
	}
}

func TestAdmin(t *testing.T) {
	const token = "0123456789abcdef-token"
	ts, _ := newTestServer(t, Options{AdminToken: token})
	cases := []struct {
		name   string
		auth   string
		status int
	}{
		{"no header", "", http.StatusUnauthorized},
		{"wrong token", "Bearer nope", http.StatusUnauthorized},
		{"token prefix only", "Bearer " + token[:5], http.StatusUnauthorized},
		{"basic scheme", "Basic " + token, http.StatusUnauthorized},
		{"right token", "Bearer " + token, http.StatusOK},
		{"scheme case-insensitive", "bearer " + token, http.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			if c.auth != "" {
				h.Set("Authorization", c.auth)
			}
			resp, body := get(t, ts.URL+"/admin", h)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, c.status, body)
			}
			if c.status == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("missing WWW-Authenticate")
			}
			if c.status == http.StatusOK {
				var a AdminInfo
				if err := json.Unmarshal([]byte(body), &a); err != nil || a.Version != "1.2.3" || a.Goroutines == 0 {
					t.Fatalf("body %q err %v", body, err)
				}
				if strings.Contains(body, token) {
					t.Fatal("admin response leaks the token")
				}
			}
		})
	}
}
