package spoolhttp

import (
	"io"
	"net/http"
	"time"

	"github.com/spoolkit/spool"
)

// ServeBuffer replies to r with the contents of b, using http.ServeContent
// over an io.SectionReader of b: it handles Range requests (206 Partial
// Content, multipart/byteranges for several ranges), HEAD, and the
// conditional headers If-Match, If-None-Match, If-Modified-Since,
// If-Unmodified-Since and If-Range, against modtime (if not zero) and the
// ETag header the caller may set on w beforehand. The Content-Type is set
// from name's extension or, failing that, by sniffing the first 512 bytes,
// unless w already has one.
//
// ServeBuffer reads b only with ReadAt, so it leaves b's offset alone, and
// several ServeBuffer calls may serve one Buffer at once. b must not be
// written or closed while it runs; a Buffer already closed is answered
// with 500 Internal Server Error rather than served as empty.
func ServeBuffer(w http.ResponseWriter, r *http.Request, name string, modtime time.Time, b *spool.Buffer) {
	if _, err := b.ReadAt(nil, 0); err != nil {
		Error(w, err)
		return
	}
	http.ServeContent(w, r, name, modtime, io.NewSectionReader(b, 0, b.Size()))
}
