package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const validBase = `
listen = "127.0.0.1:8080"
log_file = "/var/log/hello/hello.log"
log_level = "info"
greeting = "Hello from ferry"
environment = "prod"
`

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		wantErr string // substring; "" means success
		check   func(t *testing.T, c *Config)
	}{
		{
			name:  "valid full",
			input: validBase,
			check: func(t *testing.T, c *Config) {
				want := Config{Listen: "127.0.0.1:8080", LogFile: "/var/log/hello/hello.log", LogLevel: "info",
					Greeting: "Hello from ferry", Environment: "prod", Level: slog.LevelInfo}
				if *c != want {
					t.Errorf("got %+v, want %+v", *c, want)
				}
			},
		},
		{
			name:  "defaults for optional keys",
			input: "listen = \":8080\"\nlog_file = \"/tmp/x.log\"\nenvironment = \"dev\"\n",
			check: func(t *testing.T, c *Config) {
				if c.LogLevel != DefaultLogLevel || c.Level != slog.LevelInfo || c.Greeting != DefaultGreeting {
					t.Errorf("defaults not applied: %+v", *c)
				}
			},
		},
		{
			name:  "debug level and ipv6 listen and token_file",
			input: strings.NewReplacer(`"info"`, `"debug"`, `"127.0.0.1:8080"`, `"[::1]:0"`).Replace(validBase) + "token_file = \"/run/credentials/hello.service/token\"\n",
			check: func(t *testing.T, c *Config) {
				if c.Level != slog.LevelDebug || c.Listen != "[::1]:0" || c.TokenFile == "" {
					t.Errorf("unexpected %+v", *c)
				}
			},
		},
		{name: "warn level", input: strings.Replace(validBase, `"info"`, `"warn"`, 1),
			check: func(t *testing.T, c *Config) {
				if c.Level != slog.LevelWarn {
					t.Errorf("level %v", c.Level)
				}
			}},
		{name: "error level", input: strings.Replace(validBase, `"info"`, `"error"`, 1),
			check: func(t *testing.T, c *Config) {
				if c.Level != slog.LevelError {
					t.Errorf("level %v", c.Level)
				}
			}},
		{name: "localhost listen", input: strings.Replace(validBase, "127.0.0.1", "localhost", 1)},
		{name: "multi-line greeting", input: strings.Replace(validBase, `"Hello from ferry"`, `"""
Hello,
	world"""`, 1)},

		{name: "unknown key", input: validBase + "lisen = \"x\"\n", wantErr: `unknown key(s): "lisen"`},
		{name: "unknown table", input: validBase + "[extra]\nfoo = 1\n", wantErr: "unknown key(s)"},
		{name: "syntax error", input: validBase + "greeting = \n", wantErr: "syntax error"},
		{name: "duplicate key", input: validBase + "listen = \"127.0.0.1:9\"\n", wantErr: "syntax error"},
		{name: "wrong type", input: strings.Replace(validBase, `"127.0.0.1:8080"`, `8080`, 1), wantErr: "listen"},
		{name: "empty file", input: "", wantErr: "listen: required key is missing"},
		{name: "missing environment", input: strings.Replace(validBase, `environment = "prod"`, "", 1), wantErr: "environment: required key is missing"},
		{name: "missing log_file", input: strings.Replace(validBase, `log_file = "/var/log/hello/hello.log"`, "", 1), wantErr: "log_file: required key is missing"},
		{name: "bad level", input: strings.Replace(validBase, `"info"`, `"verbose"`, 1), wantErr: "log_level"},
		{name: "uppercase level", input: strings.Replace(validBase, `"info"`, `"INFO"`, 1), wantErr: "log_level"},
		{name: "listen without port", input: strings.Replace(validBase, `"127.0.0.1:8080"`, `"127.0.0.1"`, 1), wantErr: "listen"},
		{name: "listen port too big", input: strings.Replace(validBase, "8080", "70000", 1), wantErr: "listen"},
		{name: "listen named port", input: strings.Replace(validBase, "8080", "http", 1), wantErr: "listen"},
		{name: "listen hostname", input: strings.Replace(validBase, "127.0.0.1", "example.com", 1), wantErr: "listen"},
		{name: "empty listen", input: strings.Replace(validBase, `"127.0.0.1:8080"`, `""`, 1), wantErr: "listen: must not be empty"},
		{name: "relative log_file", input: strings.Replace(validBase, `"/var/log/hello/hello.log"`, `"hello.log"`, 1), wantErr: "log_file"},
		{name: "log_file dir", input: strings.Replace(validBase, `"/var/log/hello/hello.log"`, `"/var/log/hello/"`, 1), wantErr: "log_file"},
		{name: "log_file dotdot", input: strings.Replace(validBase, `"/var/log/hello/hello.log"`, `"/var/log/../etc/x"`, 1), wantErr: "log_file"},
		{name: "empty greeting", input: strings.Replace(validBase, `"Hello from ferry"`, `"  "`, 1), wantErr: "greeting"},
		{name: "control char greeting", input: strings.Replace(validBase, `"Hello from ferry"`, `"bell\u0007"`, 1), wantErr: "greeting"},
		{name: "bad environment", input: strings.Replace(validBase, `"prod"`, `"prod env"`, 1), wantErr: "environment"},
		{name: "empty environment", input: strings.Replace(validBase, `"prod"`, `""`, 1), wantErr: "environment"},
		{name: "relative token_file", input: validBase + "token_file = \"token\"\n", wantErr: "token_file"},
		{
			name:    "several errors reported together",
			input:   strings.NewReplacer(`"info"`, `"loud"`, `"prod"`, `"!"`).Replace(validBase),
			wantErr: "log_level",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.input))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("expected error containing %q, got config %+v", tt.wantErr, c)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %q does not contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestParseReportsAllErrors(t *testing.T) {
	_, err := Parse([]byte(strings.NewReplacer(`"info"`, `"loud"`, `"prod"`, `"!"`).Replace(validBase)))
	if err == nil || !strings.Contains(err.Error(), "log_level") || !strings.Contains(err.Error(), "environment") {
		t.Fatalf("want both log_level and environment errors, got %v", err)
	}
}

func TestParseRejectsInvalidUTF8(t *testing.T) {
	if _, err := Parse([]byte(validBase + "# \xff\n")); err == nil {
		t.Fatal("expected error")
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()

	t.Run("missing file", func(t *testing.T) {
		if _, err := Load(filepath.Join(dir, "nope.toml")); err == nil || !os.IsNotExist(err) {
			t.Fatalf("want not-exist error, got %v", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		if _, err := Load(dir); err == nil {
			t.Fatal("expected error for a directory")
		}
	})
	t.Run("too large", func(t *testing.T) {
		p := writeFile(t, dir, "big.toml", validBase+strings.Repeat("#", maxConfigBytes)+"\n")
		if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("want size error, got %v", err)
		}
	})
	t.Run("error names the file", func(t *testing.T) {
		p := writeFile(t, dir, "bad.toml", validBase+"x = 1\n")
		if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Fatalf("want error naming %s, got %v", p, err)
		}
	})
	t.Run("no token_file disables admin", func(t *testing.T) {
		c, err := Load(writeFile(t, dir, "plain.toml", validBase))
		if err != nil {
			t.Fatal(err)
		}
		if c.AdminEnabled() {
			t.Fatal("admin enabled without token_file")
		}
	})

	tokenCases := []struct {
		name      string
		token     *string // nil: do not create the file
		wantToken string
		wantErr   bool
	}{
		{name: "token with newline", token: ptr("s3cr3t-token-0123456789\n"), wantToken: "s3cr3t-token-0123456789"},
		{name: "empty token file disables admin", token: ptr(""), wantToken: ""},
		{name: "whitespace-only token file disables admin", token: ptr(" \n\n"), wantToken: ""},
		{name: "token with inner space", token: ptr("two words"), wantErr: true},
		{name: "token with non-ascii", token: ptr("tökén"), wantErr: true},
		{name: "missing token file", token: nil, wantErr: true},
	}
	for i, tc := range tokenCases {
		t.Run(tc.name, func(t *testing.T) {
			tokenPath := filepath.Join(dir, "token"+string(rune('a'+i)))
			if tc.token != nil {
				writeFile(t, dir, filepath.Base(tokenPath), *tc.token)
			}
			p := writeFile(t, dir, "tok.toml", validBase+"token_file = "+quote(tokenPath)+"\n")
			c, err := Load(p)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("expected error, got %+v", c)
				}
				if !strings.Contains(err.Error(), "token_file") {
					t.Errorf("error should mention token_file: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.AdminToken != tc.wantToken || c.AdminEnabled() != (tc.wantToken != "") {
				t.Fatalf("token %q enabled %v, want %q", c.AdminToken, c.AdminEnabled(), tc.wantToken)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestTemplate renders config/hello.toml.j2 with a tiny stand-in for
// minijinja ({{ var }}, {{ var | tojson }} and the optional secrets loop) and
// checks that the service accepts the result, with and without an
// "admin-token" credential, including strings that need escaping.
func TestTemplate(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "config", "hello.toml.j2"))
	if err != nil {
		t.Fatal(err)
	}
	loop := regexp.MustCompile(`(?s)\s*\{%-\s*for s in secrets\b[^%]*%\}(.*?)\{%-\s*endfor\s*%\}`)
	if !loop.Match(src) {
		t.Fatal("template has no secrets loop")
	}
	for _, withToken := range []bool{false, true} {
		t.Run(fmt.Sprintf("admin-token=%v", withToken), func(t *testing.T) {
			text := loop.ReplaceAllStringFunc(string(src), func(m string) string {
				if !withToken {
					return ""
				}
				return strings.TrimRight(loop.FindStringSubmatch(m)[1], " \t\n")
			})
			out := renderVars(t, text, map[string]any{
				"listen":      "127.0.0.1:8080",
				"log_level":   "warn",
				"greeting":    "Hi \"there\" \\ <b>&'\ttab\nnewline ünïcødé",
				"environment": "staging",
				"app.name":    "hello",
				"s.name":      "admin-token",
			})
			c, err := Parse([]byte(out))
			if err != nil {
				t.Fatalf("rendered template rejected: %v\n%s", err, out)
			}
			if c.Greeting != "Hi \"there\" \\ <b>&'\ttab\nnewline ünïcødé" || c.LogFile != "/var/log/hello/hello.log" ||
				c.Environment != "staging" || c.LogLevel != "warn" || c.Listen != "127.0.0.1:8080" {
				t.Fatalf("rendered values differ: %+v", *c)
			}
			wantToken := ""
			if withToken {
				wantToken = "/run/credentials/hello.service/admin-token"
			}
			if c.TokenFile != wantToken {
				t.Fatalf("token_file %q, want %q", c.TokenFile, wantToken)
			}
		})
	}
}

func renderVars(t *testing.T, text string, vars map[string]any) string {
	t.Helper()
	re := regexp.MustCompile(`\{\{\s*([\w.]+)\s*(\|\s*tojson\s*)?\}\}`)
	var missing []string
	out := re.ReplaceAllStringFunc(text, func(m string) string {
		sub := re.FindStringSubmatch(m)
		v, ok := vars[sub[1]]
		if !ok {
			missing = append(missing, sub[1])
			return m
		}
		if sub[2] != "" {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		return v.(string)
	})
	if len(missing) > 0 {
		t.Fatalf("template uses unknown variables %v", missing)
	}
	if strings.Contains(out, "{{") || strings.Contains(out, "{%") {
		t.Fatalf("unrendered template syntax left:\n%s", out)
	}
	return out
}
