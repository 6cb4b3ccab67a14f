// Package server holds the HTTP handlers of the hello service.
package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/google/uuid"
)

// RequestIDHeader is set on every response; its value is also logged.
const RequestIDHeader = "X-Request-Id"

// Options configures the handler.
type Options struct {
	Version     string
	Environment string
	Greeting    string
	// AdminToken enables GET /admin, guarded by "Authorization: Bearer
	// <AdminToken>". Empty disables /admin (404).
	AdminToken string
	Logger     *slog.Logger
	// Started is reported by /admin; zero means time.Now() at New.
	Started time.Time
}

type handler struct {
	opts Options
}

// New returns the service's HTTP handler, wrapped in request logging.
func New(opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Started.IsZero() {
		opts.Started = time.Now()
	}
	h := &handler{opts: opts}

	mux := http.NewServeMux()
	// "GET" patterns also match HEAD; other methods get 405.
	mux.HandleFunc("GET /{$}", h.root)
	mux.HandleFunc("GET /healthz", h.healthz)
	mux.HandleFunc("GET /version", h.version)
	if opts.AdminToken != "" {
		mux.HandleFunc("GET /admin", h.admin)
	}
	return logRequests(opts.Logger, mux)
}

func (h *handler) root(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	msg := h.opts.Greeting
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	_, _ = w.Write([]byte(msg))
}

// Health is the body of GET /healthz.
type Health struct {
	Status      string `json:"status"`
	Version     string `json:"version"`
	Environment string `json:"environment"`
}

func (h *handler) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, Health{Status: "ok", Version: h.opts.Version, Environment: h.opts.Environment})
}

// VersionInfo is the body of GET /version.
type VersionInfo struct {
	Version string `json:"version"`
	Go      string `json:"go"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
}

func (h *handler) version(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, VersionInfo{
		Version: h.opts.Version, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
	})
}

// AdminInfo is the body of GET /admin.
type AdminInfo struct {
	Version       string    `json:"version"`
	Environment   string    `json:"environment"`
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds int64     `json:"uptime_seconds"`
	Goroutines    int       `json:"goroutines"`
}

func (h *handler) admin(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hello"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, AdminInfo{
		Version:       h.opts.Version,
		Environment:   h.opts.Environment,
		StartedAt:     h.opts.Started.UTC(),
		UptimeSeconds: int64(time.Since(h.opts.Started) / time.Second),
		Goroutines:    runtime.NumGoroutine(),
	})
}

func (h *handler) authorized(r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(auth) < len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return false
	}
	given := []byte(strings.TrimSpace(auth[len(prefix):]))
	return subtle.ConstantTimeCompare(given, []byte(h.opts.AdminToken)) == 1
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type ctxKey struct{}

// RequestID returns the id assigned to the request being served, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// statusWriter records the status code and body size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logRequests gives each request a fresh random id (never taken from the
// client), returns it in X-Request-Id and logs one line per request.
func logRequests(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := "-"
		if u, err := uuid.NewRandom(); err == nil {
			id = u.String()
		}
		w.Header().Set(RequestIDHeader, id)
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		logger.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("request_id", id),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", sw.status),
			slog.Int64("bytes", sw.bytes),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.String("remote", r.RemoteAddr),
			slog.String("user_agent", r.UserAgent()),
		)
	})
}
