package spoolhttp

import (
	"io"
	"net/http"
	"time"

	"github.com/spoolkit/spool"
)

// ServeBuffer replies to r with the contents of b, using http.ServeContent
// over a spool.Reader of b: it handles Range requests (206 Partial
// Content, multipart/byteranges for several ranges), HEAD, and the
// conditional headers If-Match, If-None-Match, If-Modified-Since,
// If-Unmodified-Since and If-Range, against modtime (if not zero) and the
// ETag header the caller may set on w beforehand. The Content-Type is set
// from name's extension or, failing that, by sniffing the first 512 bytes,
// unless w already has one.
//
// The body (the whole buffer, or a single range) is written with the
// Reader's WriteTo, so when w is net/http's own HTTP/1 ResponseWriter on
// a TCP connection and b is on disk, its blocks go from the spill file to
// the connection with sendfile(2), checked but not copied through user
// space (spool.Stats.ZeroCopyBytes). Otherwise (TLS, HTTP/2, a
// ResponseWriter wrapped by middleware, a Content-Encoding set by the
// caller, several ranges, a buffer in memory) the bytes are copied, as
// they would be from an *os.File.
//
// ServeBuffer reads b through a Reader of its own (Buffer.NewSectionReader
// over b's size when it is called), so it leaves b's offset alone, and
// several ServeBuffer calls may serve one Buffer at once. b must not be
// written or closed while it runs; a Buffer already closed is answered
// with 500 Internal Server Error rather than served as empty.
func ServeBuffer(w http.ResponseWriter, r *http.Request, name string, modtime time.Time, b *spool.Buffer) {
	if _, err := b.ReadAt(nil, 0); err != nil {
		Error(w, err)
		return
	}
	content := b.NewSectionReader(0, b.Size())
	sw := &sendWriter{ResponseWriter: w, b: b, content: content, tls: r.TLS != nil}
	http.ServeContent(sw, r, name, modtime, content)
}

// A sendWriter is the ResponseWriter ServeBuffer gives http.ServeContent.
// ServeContent writes the body with io.CopyN(w, content, n), which hides
// content's WriteTo behind an *io.LimitedReader; sendWriter's ReadFrom
// recognises that reader and writes its n bytes with a Reader's WriteTo
// into the ResponseWriter it wraps, which sends spilled blocks without
// copies when that is net/http's own. Any other source (the pipe of a
// multipart/byteranges reply) is copied to the wrapped ResponseWriter as
// io.Copy would.
//
// Only ServeContent sees a sendWriter; Unwrap returns the ResponseWriter
// it wraps, for http.ResponseController.
type sendWriter struct {
	http.ResponseWriter
	b       *spool.Buffer
	content *spool.Reader // the ReadSeeker ServeContent serves: b from offset 0
	tls     bool          // the request came over TLS
}

// Unwrap returns the wrapped ResponseWriter, as http.ResponseController
// expects of a ResponseWriter that wraps another.
func (w *sendWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ReadFrom writes src to the wrapped ResponseWriter. When src is an
// *io.LimitedReader of w.content, it writes the N bytes from content's
// offset with the WriteTo of a section Reader of those bytes, and advances
// content's offset and N by the bytes written, as a copy through Read
// would.
func (w *sendWriter) ReadFrom(src io.Reader) (int64, error) {
	lr, ok := src.(*io.LimitedReader)
	if !ok || lr.R != io.Reader(w.content) {
		return io.Copy(w.ResponseWriter, src)
	}
	cur, err := w.content.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	n := min(lr.N, w.content.Size()-cur)
	if n <= 0 {
		return 0, nil
	}
	// net/http's ResponseWriter sends what its ReadFrom is given with
	// sendfile only over a plain connection (not TLS) and when the reply
	// has a Content-Length (is not chunked). Otherwise it reads the spill
	// file through user space, after spool has read each block once to
	// check it: hiding its ReadFrom then lets spool copy each block out
	// once, as checked, and count no bytes as sent without copies.
	var sink io.Writer = w.ResponseWriter
	if w.tls || w.Header().Get("Content-Length") == "" {
		sink = writerOnly{w.ResponseWriter}
	}
	// content starts at offset 0 of b, so cur is an offset of b.
	written, err := w.b.NewSectionReader(cur, n).WriteTo(sink)
	lr.N -= written
	if _, serr := w.content.Seek(written, io.SeekCurrent); err == nil {
		err = serr
	}
	return written, err
}

// writerOnly hides every method of a Writer but Write.
type writerOnly struct{ io.Writer }
