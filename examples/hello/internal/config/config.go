// Package config loads and validates the hello service configuration file.
//
// The file is TOML. Unknown keys are rejected so that typos do not silently
// fall back to defaults. Every error returned by Load or Parse is a
// configuration error: the caller is expected to exit with EX_CONFIG (78).
package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// DefaultPath is where the service looks for its configuration by default.
const DefaultPath = "/etc/hello/hello.toml"

// Defaults for optional keys.
const (
	DefaultLogLevel = "info"
	DefaultGreeting = "Hello, world!"
)

// Limits that keep a broken or hostile file from exhausting memory.
const (
	maxConfigBytes   = 1 << 20 // 1 MiB
	maxTokenBytes    = 4 << 10 // 4 KiB
	maxGreetingBytes = 4 << 10
)

// MinRecommendedTokenLen is the token length below which callers should warn.
const MinRecommendedTokenLen = 16

var environmentRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Config is the parsed configuration. Fields tagged with toml:"-" are derived
// during loading and never read from the file.
type Config struct {
	Listen      string `toml:"listen"`
	LogFile     string `toml:"log_file"`
	LogLevel    string `toml:"log_level"`
	Greeting    string `toml:"greeting"`
	Environment string `toml:"environment"`
	TokenFile   string `toml:"token_file"`

	// Level is LogLevel converted to a slog level.
	Level slog.Level `toml:"-"`
	// AdminToken is the bearer token read from TokenFile. Empty means the
	// admin endpoint is disabled (TokenFile unset, or set to an empty file).
	AdminToken string `toml:"-"`
}

// AdminEnabled reports whether the /admin endpoint should be served.
func (c *Config) AdminEnabled() bool { return c.AdminToken != "" }

// Load reads, parses and validates the file at path, then reads the token
// file if one is configured. It performs no writes.
func Load(path string) (*Config, error) {
	data, err := readLimited(path, maxConfigBytes)
	if err != nil {
		return nil, err
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := cfg.loadToken(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes and validates configuration text. It does not touch the
// filesystem (the token file is read by Load).
func Parse(data []byte) (*Config, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("file is not valid UTF-8")
	}
	var cfg Config
	md, err := toml.Decode(string(data), &cfg)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("syntax error: %s", pe.Error())
		}
		return nil, err
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = strconv.Quote(k.String())
		}
		return nil, fmt.Errorf("unknown key(s): %s", strings.Join(keys, ", "))
	}

	var errs []error
	for _, key := range []string{"listen", "log_file", "environment"} {
		if !md.IsDefined(key) {
			errs = append(errs, fmt.Errorf("%s: required key is missing", key))
		}
	}
	if !md.IsDefined("log_level") {
		cfg.LogLevel = DefaultLogLevel
	}
	if !md.IsDefined("greeting") {
		cfg.Greeting = DefaultGreeting
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func (c *Config) validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}

	if err := validateListen(c.Listen); err != nil {
		add("listen", "%v", err)
	}

	if err := validateAbsPath(c.LogFile); err != nil {
		add("log_file", "%v", err)
	}

	switch c.LogLevel {
	case "debug":
		c.Level = slog.LevelDebug
	case "info":
		c.Level = slog.LevelInfo
	case "warn":
		c.Level = slog.LevelWarn
	case "error":
		c.Level = slog.LevelError
	default:
		add("log_level", "%q is not one of debug, info, warn, error", c.LogLevel)
	}

	switch {
	case strings.TrimSpace(c.Greeting) == "":
		add("greeting", "must not be empty")
	case len(c.Greeting) > maxGreetingBytes:
		add("greeting", "longer than %d bytes", maxGreetingBytes)
	case strings.IndexFunc(c.Greeting, isForbiddenControl) >= 0:
		add("greeting", "contains control characters")
	}

	if !environmentRE.MatchString(c.Environment) {
		add("environment", "%q must be 1-63 characters of letters, digits, '.', '_' or '-', starting with a letter or digit", c.Environment)
	}

	if c.TokenFile != "" {
		if err := validateAbsPath(c.TokenFile); err != nil {
			add("token_file", "%v", err)
		}
	}

	return joinErrors(errs)
}

// joinErrors reports every problem on one line (friendlier to journald than
// errors.Join's newlines). It returns nil for an empty slice.
func joinErrors(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

func validateListen(addr string) error {
	if addr == "" {
		return errors.New("must not be empty")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", addr, err)
	}
	// Numeric ports only: service names would need /etc/services.
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || port != strconv.FormatUint(n, 10) {
		return fmt.Errorf("%q: port %q must be a number between 0 and 65535", addr, port)
	}
	// IP literals (or empty = all addresses) and "localhost" only: binding a
	// DNS name would make startup depend on name resolution.
	if host != "" && host != "localhost" && net.ParseIP(host) == nil {
		return fmt.Errorf("%q: host %q must be an IP address, \"localhost\" or empty", addr, host)
	}
	return nil
}

func validateAbsPath(p string) error {
	switch {
	case p == "":
		return errors.New("must not be empty")
	case strings.ContainsRune(p, 0):
		return errors.New("contains a NUL byte")
	case !filepath.IsAbs(p):
		return fmt.Errorf("%q must be an absolute path", p)
	case filepath.Clean(p) != p || p == "/":
		return fmt.Errorf("%q must be a clean path to a file (no trailing '/', '//', '.' or '..')", p)
	}
	return nil
}

// isForbiddenControl allows tab and newline in free text, nothing else below
// U+0020, nor DEL and the C1 range.
func isForbiddenControl(r rune) bool {
	return unicode.IsControl(r) && r != '\t' && r != '\n'
}

// loadToken reads TokenFile. Leading and trailing whitespace (such as the
// final newline most editors add) is ignored. An empty file disables /admin.
func (c *Config) loadToken() error {
	c.AdminToken = ""
	if c.TokenFile == "" {
		return nil
	}
	data, err := readLimited(c.TokenFile, maxTokenBytes)
	if err != nil {
		return fmt.Errorf("token_file: %w", err)
	}
	token := strings.TrimSpace(string(data))
	for i := 0; i < len(token); i++ {
		// The token travels in an HTTP header: visible ASCII only.
		if token[i] < 0x21 || token[i] > 0x7e {
			return fmt.Errorf("token_file: %s: token must be a single line of printable ASCII without spaces", c.TokenFile)
		}
	}
	c.AdminToken = token
	return nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}
