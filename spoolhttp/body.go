package spoolhttp

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/spoolkit/spool"
)

// ReadBody reads req.Body to its end into a new Buffer of m and returns
// the Buffer rewound to its start, so that the handler can read it several
// times, seek in it, or give it to zip.NewReader(buf, buf.Size()). The
// caller owns the Buffer and must Close it. ReadBody does not close
// req.Body (the server does).
//
// maxBytes limits the body as http.MaxBytesReader does: a body of more
// than maxBytes bytes fails with ErrTooLarge (413), at once if
// req.ContentLength announces it. As in Limits, 0 means the default,
// DefaultMaxTotalBytes (32 GiB; the Manager's Options.DiskBudget is what
// protects the disk from all bodies together), and a negative maxBytes
// means no limit.
//
// On error ReadBody closes the Buffer and returns nil and an error for
// which StatusCode gives a status: ErrTooLarge, ErrMalformed (the body
// could not be read: a bad chunked encoding, a client gone), or the error
// of m (spool.ErrDiskBudget, a full disk, ...), wrapped.
func ReadBody(req *http.Request, m *spool.Manager, maxBytes int64) (*spool.Buffer, error) {
	return readBody(req.Body, req.ContentLength, m, maxBytes)
}

func readBody(body io.Reader, contentLength int64, m *spool.Manager, maxBytes int64) (*spool.Buffer, error) {
	maxBytes = bodyLimit(maxBytes)
	if maxBytes >= 0 && contentLength > maxBytes {
		return nil, fmt.Errorf("%w: Content-Length %d exceeds %d bytes", ErrTooLarge, contentLength, maxBytes)
	}
	buf, err := m.NewBuffer()
	if err != nil {
		return nil, fmt.Errorf("spoolhttp: spooling body: %w", err)
	}
	if body != nil {
		var n int64
		src := &limitReader{r: body, n: &n, max: maxBytes, exceeds: "body exceeds"}
		if _, err := buf.ReadFrom(fullReader{src}); err != nil {
			buf.Close()
			return nil, copyError(err, "body")
		}
	}
	if _, err := buf.Seek(0, io.SeekStart); err != nil {
		buf.Close()
		return nil, fmt.Errorf("spoolhttp: spooling body: %w", err)
	}
	return buf, nil
}

// bodyKey is the context key of the Buffer SpoolBody stores.
type bodyKey struct{}

// SpoolBody returns middleware that reads each request's body into a
// Buffer of m, as ReadBody does, before calling the next handler. The
// handler gets a request whose Body is the Buffer, rewound, whose
// ContentLength is its size, and from which Body returns the Buffer, to
// seek in it or read it again. The middleware closes the Buffer when the
// handler returns (or panics); the handler may close it sooner, through
// r.Body, to give its memory back early, but must not use it afterwards.
//
// maxBytes limits each body as in ReadBody: a body of more than maxBytes
// bytes is refused with 413 Request Entity Too Large (ErrTooLarge), at
// once if its Content-Length announces it; 0 means the default,
// DefaultMaxTotalBytes, and a negative maxBytes means no limit.
//
// The body is read through http.MaxBytesReader with that limit, so that
// the server closes the connection after rejecting an oversized body
// rather than read the rest. If spooling fails, the handler is not called
// and the middleware replies with Error.
func SpoolBody(m *spool.Manager, maxBytes int64) func(http.Handler) http.Handler {
	maxBytes = bodyLimit(maxBytes)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var body io.Reader
			if r.Body != nil {
				body = r.Body
				if maxBytes >= 0 {
					body = http.MaxBytesReader(w, r.Body, maxBytes)
				}
			}
			buf, err := readBody(body, r.ContentLength, m, maxBytes)
			if err != nil {
				Error(w, err)
				return
			}
			defer buf.Close()
			r2 := r.WithContext(context.WithValue(r.Context(), bodyKey{}, buf))
			r2.Body = buf
			r2.ContentLength = buf.Size()
			r2.TransferEncoding = nil
			next.ServeHTTP(w, r2)
		})
	}
}

// Body returns the Buffer that holds r's body, spooled by SpoolBody, or
// nil if SpoolBody did not handle r. The Buffer belongs to the middleware,
// which closes it when the handler returns: do not keep it longer.
func Body(r *http.Request) *spool.Buffer {
	b, _ := r.Context().Value(bodyKey{}).(*spool.Buffer)
	return b
}

// Error replies to a request that failed with err, as http.Error does,
// with the status StatusCode(err). The message is err's for a client
// error (4xx), which tells the client what limit it passed or what is
// malformed, and the status text only for a server error (5xx), so that
// no server detail, such as the path of a spill file, leaks.
func Error(w http.ResponseWriter, err error) {
	code := StatusCode(err)
	msg := http.StatusText(code)
	if code >= 400 && code < 500 {
		msg = err.Error()
	}
	http.Error(w, msg, code)
}

// bodyLimit returns the limit on a body that maxBytes asks for, as in
// Limits: DefaultMaxTotalBytes for 0, and -1 (no limit) for any negative
// maxBytes.
func bodyLimit(maxBytes int64) int64 {
	switch {
	case maxBytes == 0:
		return DefaultMaxTotalBytes
	case maxBytes < 0:
		return -1
	}
	return maxBytes
}
