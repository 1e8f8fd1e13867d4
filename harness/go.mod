module github.com/sessionlock/sessionlock/harness

go 1.26.0

require (
	github.com/hanwen/go-fuse/v2 v2.12.1
	github.com/sessionlock/sessionlock v0.0.0
	github.com/stretchr/testify v1.12.1
	github.com/zeebo/blake3 v0.2.4
	go.uber.org/goleak v1.3.0
	golang.org/x/sys v0.50.0
)

require (
	github.com/gofrs/flock v0.13.2 // indirect
	github.com/klauspost/cpuid/v2 v2.0.12 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)

replace github.com/sessionlock/sessionlock => ../
