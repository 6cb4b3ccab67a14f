package main

// End-to-end tests: build the real binary and run it the way systemd does,
// with a notify socket, watchdog and socket activation.

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const e2eVersion = "9.9.9-e2e"

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hello-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "hello")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version="+e2eVersion, "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = err
			binPath = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, binPath)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" && buildErr == nil {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// notifySocket is a fake systemd notify socket.
type notifySocket struct {
	path string
	conn *net.UnixConn
	msgs chan string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	// Short directory: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "hn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ns := &notifySocket{path: path, conn: conn, msgs: make(chan string, 100)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(ns.msgs)
				return
			}
			ns.msgs <- string(buf[:n])
		}
	}()
	return ns
}

// waitFor returns the first message containing want, failing after timeout.
func (ns *notifySocket) waitFor(t *testing.T, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-ns.msgs:
			if !ok {
				t.Fatalf("notify socket closed while waiting for %q", want)
			}
			if strings.Contains(m, want) {
				return m
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %q", want)
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startService(t *testing.T, cmd *exec.Cmd) (*lockedBuffer, chan error) {
	t.Helper()
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	cmd.Stdout = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	})
	return stderr, done
}

func waitExit(t *testing.T, done chan error, stderr *lockedBuffer) int {
	t.Helper()
	select {
	case err := <-done:
		if err == nil {
			return 0
		}
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		t.Fatalf("wait: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatalf("service did not exit; stderr:\n%s", stderr.String())
	}
	return -1
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func logContains(t *testing.T, path, want string) bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	return strings.Contains(string(data), want)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestE2ENotifyRotateShutdown(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "")
	logPath := filepath.Join(dir, "hello.log")
	ns := newNotifySocket(t)

	cmd := exec.Command(bin, "-config", cfg)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+ns.path, "WATCHDOG_USEC=200000")
	stderr, done := startService(t, cmd)

	ready := ns.waitFor(t, "READY=1", 10*time.Second)
	_, addr, ok := strings.Cut(ready, "STATUS=serving on ")
	if !ok {
		t.Fatalf("READY message without address: %q", ready)
	}
	base := "http://" + strings.TrimSpace(addr)

	// The socket is bound by the time READY=1 arrives.
	code, body := httpGet(t, base+"/healthz")
	var h map[string]string
	if code != 200 || json.Unmarshal([]byte(body), &h) != nil || h["status"] != "ok" || h["version"] != e2eVersion || h["environment"] != "test" {
		t.Fatalf("healthz: %d %q", code, body)
	}
	if code, body := httpGet(t, base+"/"); code != 200 || body != "Hello from the test\n" {
		t.Fatalf("root: %d %q", code, body)
	}

	ns.waitFor(t, "WATCHDOG=1", 5*time.Second)

	// logrotate "create": rename, then SIGHUP.
	rotated := logPath + ".1"
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	ns.waitFor(t, "RELOADING=1", 5*time.Second)
	ns.waitFor(t, "READY=1", 5*time.Second)
	eventually(t, "reopened log file", func() bool { return logContains(t, logPath, "log file reopened") })
	httpGet(t, base+"/version")
	eventually(t, "request logged to new file", func() bool { return logContains(t, logPath, `"path":"/version"`) })
	if !logContains(t, rotated, `"path":"/healthz"`) || logContains(t, rotated, `"path":"/version"`) {
		t.Fatal("rotated file should hold the requests before SIGHUP only")
	}
	if fi, err := os.Stat(logPath); err != nil || fi.Mode().Perm()&0o007 != 0 {
		t.Fatalf("new log file mode: %v %v", fi, err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ns.waitFor(t, "STOPPING=1", 5*time.Second)
	if code := waitExit(t, done, stderr); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; stderr:\n%s", code, stderr.String())
	}
	if !logContains(t, logPath, `"msg":"stopped"`) {
		t.Fatal("no 'stopped' record in the log")
	}
}

func TestE2ESocketActivation(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	// The configured address is unusable, proving the inherited socket is used.
	cfg := filepath.Join(dir, "hello.toml")
	os.WriteFile(cfg, []byte(`listen = "192.0.2.1:1"
log_file = `+quoteTOML(filepath.Join(dir, "hello.log"))+`
environment = "socket"
`), 0o600)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lf, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	defer lf.Close()

	// LISTEN_PID must be the service's own pid, as systemd sets it.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" -config "$1"`, bin, cfg)
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_FDNAMES=http")
	cmd.ExtraFiles = []*os.File{lf} // fd 3
	stderr, done := startService(t, cmd)

	base := "http://" + l.Addr().String()
	code, body := httpGet(t, base+"/healthz")
	if code != 200 || !strings.Contains(body, `"environment":"socket"`) {
		t.Fatalf("healthz over inherited socket: %d %q; stderr:\n%s", code, body, stderr.String())
	}
	eventually(t, "socket_activated log", func() bool {
		return logContains(t, filepath.Join(dir, "hello.log"), `"socket_activated":true`)
	})

	cmd.Process.Signal(syscall.SIGINT)
	if code := waitExit(t, done, stderr); code != 0 {
		t.Fatalf("exit code %d after SIGINT; stderr:\n%s", code, stderr.String())
	}
}

func TestE2EListenFailure(t *testing.T) {
	bin := buildBinary(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hello.toml")
	os.WriteFile(cfg, []byte(`listen = "`+l.Addr().String()+`"
log_file = `+quoteTOML(filepath.Join(dir, "hello.log"))+`
environment = "test"
`), 0o600)
	cmd := exec.Command(bin, "-config", cfg)
	stderr, done := startService(t, cmd)
	if code := waitExit(t, done, stderr); code != 1 || !strings.Contains(stderr.String(), "cannot listen") {
		t.Fatalf("exit %d stderr %q, want 1 and 'cannot listen'", code, stderr.String())
	}
}
