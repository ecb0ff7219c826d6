module github.com/spoolkit/spool

go 1.26.8

require (
	golang.org/x/sync v0.24.0
	golang.org/x/sys v0.49.0
)

require go.uber.org/goleak v1.3.0 // indirect
