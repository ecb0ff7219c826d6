module github.com/spoolkit/spool

go 1.26.0

require (
	github.com/dgraph-io/ristretto/v2 v2.4.2
	github.com/minio/crc64nvme v1.1.1
	go.uber.org/goleak v1.3.0
	golang.org/x/sync v0.24.0
	golang.org/x/sys v0.49.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dustin/go-humanize v1.0.1 // indirect
	github.com/klauspost/cpuid/v2 v2.2.10 // indirect
)
