package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, dir, extra string) string {
	t.Helper()
	p := filepath.Join(dir, "hello.toml")
	content := `listen = "127.0.0.1:0"
log_file = ` + quoteTOML(filepath.Join(dir, "hello.log")) + `
log_level = "debug"
greeting = "Hello from the test"
environment = "test"
` + extra
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func quoteTOML(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func runMain(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersionFlag(t *testing.T) {
	old := version
	version = "1.2.3"
	defer func() { version = old }()
	code, out, _ := runMain("-version")
	if code != 0 || out != "1.2.3\n" {
		t.Fatalf("code %d out %q", code, out)
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := writeConfig(t, dir, "")
	if code, out, errOut := runMain("-check-config", "-config", good); code != exitOK || !strings.Contains(out, "valid") {
		t.Fatalf("valid config: code %d out %q err %q", code, out, errOut)
	}
	// -check-config does not create the log file.
	if _, err := os.Stat(filepath.Join(dir, "hello.log")); !os.IsNotExist(err) {
		t.Fatalf("check-config touched the log file: %v", err)
	}

	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("listen = \"127.0.0.1:0\"\nbogus = true\n"), 0o600)
	for name, path := range map[string]string{"unknown key": bad, "missing file": filepath.Join(dir, "none.toml")} {
		code, _, errOut := runMain("-check-config", "-config", path)
		if code != exitConfig || !strings.Contains(errOut, "invalid configuration") {
			t.Errorf("%s: code %d stderr %q, want 78", name, code, errOut)
		}
		// Serving with a bad config must also exit 78 (RestartPreventExitStatus).
		if code, _, _ := runMain("-config", path); code != exitConfig {
			t.Errorf("%s: serve exit code %d, want 78", name, code)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	if code, _, _ := runMain("-no-such-flag"); code != exitUsage {
		t.Errorf("unknown flag: code %d", code)
	}
	if code, _, _ := runMain("extra"); code != exitUsage {
		t.Errorf("extra arg: code %d", code)
	}
	if code, _, _ := runMain("-h"); code != exitOK {
		t.Errorf("-h: code %d", code)
	}
}

func TestLogFileUnopenable(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hello.toml")
	os.WriteFile(cfg, []byte(`listen = "127.0.0.1:0"
log_file = `+quoteTOML(filepath.Join(dir, "missing-dir", "hello.log"))+`
environment = "test"
`), 0o600)
	code, _, errOut := runMain("-config", cfg)
	if code != exitFailure || !strings.Contains(errOut, "cannot open log file") {
		t.Fatalf("code %d stderr %q", code, errOut)
	}
}

func TestCrashAtStart(t *testing.T) {
	old := crashAtStart
	crashAtStart = "1"
	defer func() { crashAtStart = old }()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "")
	code, _, errOut := runMain("-config", cfg)
	if code != exitFailure || !strings.Contains(errOut, "crashAtStart set: exiting") {
		t.Fatalf("code %d stderr %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "hello.log")); !os.IsNotExist(err) {
		t.Fatal("crashAtStart should exit before opening the log file")
	}
	// Pre-flight checks of such a release still pass.
	if code, _, _ := runMain("-check-config", "-config", cfg); code != exitOK {
		t.Fatalf("-check-config with crashAtStart: code %d", code)
	}
	if code, _, _ := runMain("-version"); code != exitOK {
		t.Fatalf("-version with crashAtStart: code %d", code)
	}
}
