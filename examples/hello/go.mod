module example.com/hello

go 1.25.0

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/coreos/go-systemd/v22 v22.7.0
	github.com/google/uuid v1.6.0
)

require golang.org/x/sys v0.47.0 // indirect
