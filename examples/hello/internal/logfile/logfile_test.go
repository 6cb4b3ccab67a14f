package logfile

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSuffix(string(data), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestOpenCreatesWithMode(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "hello.log")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != Mode {
		t.Fatalf("mode %v, want %v", got, Mode)
	}
}

func TestOpenAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hello.log")
	if err := os.WriteFile(path, []byte("existing\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "appended")
	f.Close()
	if got := readLines(t, path); strings.Join(got, ",") != "existing,appended" {
		t.Fatalf("got %q", got)
	}
}

func TestOpenMissingDirectory(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "nodir", "hello.log")); err == nil {
		t.Fatal("expected error: Open must not create directories")
	}
}

// TestReopenAfterRename is what logrotate's "create" mode does: rename the
// file, (optionally create a new one), signal; the service reopens.
func TestReopenAfterRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hello.log")
	rotated := path + ".1"

	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	logger := slog.New(slog.NewJSONHandler(f, nil))

	logger.Info("before rotation")
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	logger.Info("after rename, before reopen") // still goes to the renamed file
	if err := f.Reopen(); err != nil {
		t.Fatal(err)
	}
	logger.Info("after reopen")

	old := readLines(t, rotated)
	cur := readLines(t, path)
	if len(old) != 2 || !strings.Contains(old[0], "before rotation") || !strings.Contains(old[1], "before reopen") {
		t.Fatalf("rotated file: %q", old)
	}
	if len(cur) != 1 || !strings.Contains(cur[0], "after reopen") {
		t.Fatalf("new file: %q", cur)
	}
}

func TestReopenFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "logs")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(sub, "hello.log")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	moved := filepath.Join(dir, "moved")
	if err := os.Rename(sub, moved); err != nil { // directory gone: reopen fails
		t.Fatal(err)
	}
	if err := f.Reopen(); err == nil {
		t.Fatal("expected reopen error")
	}
	if _, err := fmt.Fprintln(f, "still logging"); err != nil {
		t.Fatalf("write after failed reopen: %v", err)
	}
	if got := readLines(t, filepath.Join(moved, "hello.log")); len(got) != 1 || got[0] != "still logging" {
		t.Fatalf("got %q", got)
	}
}

func TestClose(t *testing.T) {
	f, err := Open(filepath.Join(t.TempDir(), "hello.log"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("x\n")); err == nil {
		t.Fatal("write after close succeeded")
	}
	if err := f.Reopen(); err == nil {
		t.Fatal("reopen after close succeeded")
	}
}

// TestConcurrentWritesDuringRotation rotates repeatedly while many goroutines
// log. Every record must land complete in exactly one file. Run with -race.
func TestConcurrentWritesDuringRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hello.log")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(f, nil))

	const writers, perWriter, rotations = 8, 500, 20
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				logger.Info("msg", "writer", w, "i", i, "pad", strings.Repeat("x", 200))
			}
		}(w)
	}
	var rotated []string
	for r := 0; r < rotations; r++ {
		name := fmt.Sprintf("%s.%d", path, r)
		if err := os.Rename(path, name); err != nil {
			t.Fatal(err)
		}
		rotated = append(rotated, name)
		if err := f.Reopen(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	seen := make(map[string]bool)
	for _, p := range append(rotated, path) {
		fh, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "{") || !strings.HasSuffix(line, "}") {
				t.Fatalf("torn line in %s: %q", p, line)
			}
			if seen[line[strings.Index(line, `"writer"`):]] {
				t.Fatalf("duplicate record %q", line)
			}
			seen[line[strings.Index(line, `"writer"`):]] = true
		}
		fh.Close()
	}
	if len(seen) != writers*perWriter {
		t.Fatalf("found %d records, want %d", len(seen), writers*perWriter)
	}
}
