package spoolhttp_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolkit/spool"
	"github.com/spoolkit/spool/spoolhttp"
)

// TestServeBuffer: Range, multiple ranges, HEAD and conditional requests
// on a spilled buffer, served through a real server on loopback.
func TestServeBuffer(t *testing.T) {
	m := tinyManager(t)
	data := randBytes(rand.New(rand.NewPCG(9, 10)), 100<<10)
	b, _ := m.NewBuffer()
	defer b.Close()
	b.Write(data) // the offset is left at the end: ServeBuffer ignores it
	if !b.OnDisk() {
		t.Fatal("not spilled")
	}
	modtime := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		spoolhttp.ServeBuffer(w, r, "data.bin", modtime, b)
	}))
	defer srv.Close()
	get := func(method string, header ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL, nil)
		for i := 0; i < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}

	resp, body := get("GET")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("whole: %d, %d bytes", resp.StatusCode, len(body))
	}

	resp, body = get("GET", "Range", "bytes=70000-70099")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[70000:70100]) ||
		resp.Header.Get("Content-Range") != "bytes 70000-70099/102400" {
		t.Errorf("range: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Range"), len(body))
	}

	resp, body = get("GET", "Range", "bytes=-10")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[len(data)-10:]) {
		t.Errorf("suffix range: %d, %d bytes", resp.StatusCode, len(body))
	}

	resp, body = get("GET", "Range", "bytes=0-4,100000-100009")
	_, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for _, want := range [][]byte{data[:5], data[100000:100010]} {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("multiple ranges: %v", err)
		}
		got, _ := io.ReadAll(p)
		if !bytes.Equal(got, want) {
			t.Errorf("multiple ranges: part differs")
		}
	}

	resp, _ = get("GET", "Range", "bytes=200000-")
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("range past the end: %d", resp.StatusCode)
	}

	resp, body = get("HEAD")
	if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.ContentLength != int64(len(data)) {
		t.Errorf("HEAD: %d, %d bytes, length %d", resp.StatusCode, len(body), resp.ContentLength)
	}

	resp, _ = get("GET", "If-None-Match", `"v1"`)
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}
	resp, _ = get("GET", "If-Modified-Since", modtime.Format(http.TimeFormat))
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-Modified-Since: %d", resp.StatusCode)
	}
	resp, body = get("GET", "Range", "bytes=0-9", "If-Range", `"v0"`)
	if resp.StatusCode != http.StatusOK || len(body) != len(data) {
		t.Errorf("stale If-Range: %d, %d bytes", resp.StatusCode, len(body))
	}
	if off, _ := b.Seek(0, io.SeekCurrent); off != int64(len(data)) {
		t.Errorf("offset moved to %d", off)
	}
}

func TestServeBufferContentType(t *testing.T) {
	m := newManager(t, spool.Options{})
	b, _ := m.NewBuffer()
	defer b.Close()
	b.WriteString("<html><body>hi</body></html>")
	for name, want := range map[string]string{"page.txt": "text/plain", "page": "text/html"} {
		w := httptest.NewRecorder()
		spoolhttp.ServeBuffer(w, httptest.NewRequest("GET", "/", nil), name, time.Time{}, b)
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, want) || w.Body.String() != "<html><body>hi</body></html>" {
			t.Errorf("%s: Content-Type %q, body %q", name, ct, w.Body)
		}
	}
}

func TestServeBufferClosed(t *testing.T) {
	m := newManager(t, spool.Options{})
	b, _ := m.NewBuffer()
	b.WriteString("gone")
	b.Close()
	w := httptest.NewRecorder()
	spoolhttp.ServeBuffer(w, httptest.NewRequest("GET", "/", nil), "x", time.Time{}, b)
	if w.Code != http.StatusInternalServerError {
		t.Errorf("closed buffer: %d %q", w.Code, w.Body)
	}
}

// do sends a request with the given header (name, value pairs) to url and
// returns the response and its whole body.
func do(t *testing.T, c *http.Client, method, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// servedBuffer serves b with ServeBuffer through a real server on
// loopback (TLS if tls is set), wrapping the ResponseWriter with wrap if
// not nil. Each call of the handler sends on the returned channel once
// ServeBuffer has returned, so that a test can wait for the server's side
// of a request to end before it reads the Manager's Stats.
func servedBuffer(t *testing.T, b *spool.Buffer, tls bool, wrap func(http.ResponseWriter) http.ResponseWriter) (*httptest.Server, <-chan struct{}) {
	t.Helper()
	served := make(chan struct{}, 100)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { served <- struct{}{} }()
		if wrap != nil {
			w = wrap(w)
		}
		w.Header().Set("ETag", `"v1"`)
		spoolhttp.ServeBuffer(w, r, "blob", time.Time{}, b) // no extension: the type is sniffed
	})
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv, served
}

// spilledBuffer returns a Buffer of m holding data, rolled over to disk,
// with its offset at off.
func spilledBuffer(t *testing.T, m *spool.Manager, data []byte, off int64) *spool.Buffer {
	t.Helper()
	b, err := m.NewBuffer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if _, err := b.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := b.Rollover(); err != nil {
		t.Fatal(err)
	}
	if !b.OnDisk() || m.Stats().MemoryInUse != 0 {
		t.Fatalf("not wholly on disk: %+v", m.Stats())
	}
	if _, err := b.Seek(off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestServeBufferZeroCopy: over a plain HTTP/1 connection, the spilled
// bytes of a whole body and of a single range are sent with sendfile
// (Stats.ZeroCopyBytes grows by exactly the bytes of the body), intact;
// several ranges, HEAD and 304 still work; the Buffer's offset does not
// move.
func TestServeBufferZeroCopy(t *testing.T) {
	m := newManager(t, spool.Options{MemoryBudget: 1 << 20})
	data := randBytes(rand.New(rand.NewPCG(11, 12)), 300<<10+123)
	b := spilledBuffer(t, m, data, 777)
	srv, served := servedBuffer(t, b, false, nil)

	// get sends a request and returns the response, its body and the
	// bytes sent without copies while serving it.
	get := func(method string, header ...string) (*http.Response, []byte, int64) {
		t.Helper()
		before := m.Stats().ZeroCopyBytes
		resp, body := do(t, srv.Client(), method, srv.URL, header...)
		<-served
		return resp, body, m.Stats().ZeroCopyBytes - before
	}

	resp, body, zc := get("GET")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Errorf("whole: %d, %d bytes, intact %v", resp.StatusCode, len(body), bytes.Equal(body, data))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("sniffed Content-Type %q", ct)
	}
	if zc != int64(len(data)) {
		t.Errorf("whole: %d bytes sent without copies, want %d", zc, len(data))
	}

	resp, body, zc = get("GET", "Range", "bytes=10000-200000")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[10000:200001]) {
		t.Errorf("range: %d, %d bytes", resp.StatusCode, len(body))
	}
	if zc != 190001 {
		t.Errorf("range: %d bytes sent without copies, want 190001", zc)
	}

	resp, body, zc = get("GET", "Range", "bytes=-70000")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[len(data)-70000:]) || zc != 70000 {
		t.Errorf("suffix range: %d, %d bytes, %d without copies", resp.StatusCode, len(body), zc)
	}

	resp, body, _ = get("GET", "Range", "bytes=0-4,100000-199999")
	_, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for _, want := range [][]byte{data[:5], data[100000:200000]} {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("multiple ranges: %d, %v", resp.StatusCode, err)
		}
		if got, _ := io.ReadAll(p); !bytes.Equal(got, want) {
			t.Errorf("multiple ranges: part differs")
		}
	}

	resp, body, zc = get("HEAD")
	if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.ContentLength != int64(len(data)) || zc != 0 {
		t.Errorf("HEAD: %d, %d bytes, length %d, %d without copies", resp.StatusCode, len(body), resp.ContentLength, zc)
	}
	resp, body, zc = get("GET", "If-None-Match", `"v1"`)
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 || zc != 0 {
		t.Errorf("If-None-Match: %d, %d bytes, %d without copies", resp.StatusCode, len(body), zc)
	}

	if off, _ := b.Seek(0, io.SeekCurrent); off != 777 {
		t.Errorf("the Buffer's offset moved to %d", off)
	}
}

// TestServeBufferCopied: where sendfile does not apply (a buffer in
// memory, a ResponseWriter wrapped by middleware, a chunked reply, TLS),
// ServeBuffer serves the same bytes, and counts none as sent without
// copies.
func TestServeBufferCopied(t *testing.T) {
	data := randBytes(rand.New(rand.NewPCG(13, 14)), 200<<10+5)
	// check GETs the whole body and a range, and checks the bytes sent
	// without copies for each: none, or all if zeroCopy says so.
	check := func(t *testing.T, m *spool.Manager, srv *httptest.Server, served <-chan struct{}, zeroCopy [2]bool) {
		t.Helper()
		for i, rng := range [][]string{nil, {"Range", "bytes=5000-150000"}} {
			want, code := data, http.StatusOK
			if rng != nil {
				want, code = data[5000:150001], http.StatusPartialContent
			}
			before := m.Stats().ZeroCopyBytes
			resp, body := do(t, srv.Client(), "GET", srv.URL, rng...)
			<-served
			if resp.StatusCode != code || !bytes.Equal(body, want) {
				t.Errorf("%q: %d, %d bytes, intact %v", rng, resp.StatusCode, len(body), bytes.Equal(body, want))
			}
			wantZC := int64(0)
			if zeroCopy[i] {
				wantZC = int64(len(want))
			}
			if zc := m.Stats().ZeroCopyBytes - before; zc != wantZC {
				t.Errorf("%q: %d bytes counted as sent without copies, want %d", rng, zc, wantZC)
			}
		}
	}

	t.Run("memory", func(t *testing.T) {
		m := newManager(t, spool.Options{MemoryBudget: 4 << 20})
		b, _ := m.NewBuffer()
		defer b.Close()
		b.Write(data)
		if b.OnDisk() {
			t.Fatal("spilled")
		}
		srv, served := servedBuffer(t, b, false, nil)
		check(t, m, srv, served, [2]bool{false, false})
		if off, _ := b.Seek(0, io.SeekCurrent); off != int64(len(data)) {
			t.Errorf("the Buffer's offset moved to %d", off)
		}
	})
	t.Run("wrapped", func(t *testing.T) {
		m := newManager(t, spool.Options{MemoryBudget: 1 << 20})
		b := spilledBuffer(t, m, data, 0)
		type wrapper struct{ http.ResponseWriter }
		srv, served := servedBuffer(t, b, false, func(w http.ResponseWriter) http.ResponseWriter { return wrapper{w} })
		check(t, m, srv, served, [2]bool{false, false})
	})
	t.Run("chunked", func(t *testing.T) {
		// With a Content-Encoding set, ServeContent sends a whole body
		// without a Content-Length, and net/http chunks it; a range
		// still has one, and goes with sendfile.
		m := newManager(t, spool.Options{MemoryBudget: 1 << 20})
		b := spilledBuffer(t, m, data, 0)
		srv, served := servedBuffer(t, b, false, func(w http.ResponseWriter) http.ResponseWriter {
			w.Header().Set("Content-Encoding", "identity")
			return w
		})
		check(t, m, srv, served, [2]bool{false, true})
	})
	t.Run("tls", func(t *testing.T) {
		m := newManager(t, spool.Options{MemoryBudget: 1 << 20})
		b := spilledBuffer(t, m, data, 0)
		srv, served := servedBuffer(t, b, true, nil)
		check(t, m, srv, served, [2]bool{false, false})
	})
}

// TestServeBufferConcurrent: concurrent GETs of one spilled Buffer, whole
// and ranges, all get intact bodies, all sent without copies, and the
// Buffer's offset stays where it was.
func TestServeBufferConcurrent(t *testing.T) {
	m := newManager(t, spool.Options{MemoryBudget: 1 << 20})
	data := randBytes(rand.New(rand.NewPCG(15, 16)), 256<<10+77)
	b := spilledBuffer(t, m, data, 42)
	srv, served := servedBuffer(t, b, false, nil)
	before := m.Stats().ZeroCopyBytes

	const clients = 4
	var wg sync.WaitGroup
	var want int64
	for i := range clients {
		start, end := i*1000, len(data)-1-i*3000 // client 0 gets the whole body
		want += int64(end - start + 1)
		wg.Go(func() {
			c := &http.Client{Transport: &http.Transport{}} // a connection of its own
			defer c.CloseIdleConnections()
			var header []string
			if i > 0 {
				header = []string{"Range", fmt.Sprintf("bytes=%d-%d", start, end)}
			}
			for range 3 {
				resp, body := do(t, c, "GET", srv.URL, header...)
				if !bytes.Equal(body, data[start:end+1]) {
					t.Errorf("client %d: %d, %d bytes, want %d, intact %v", i, resp.StatusCode, len(body), end-start+1, bytes.Equal(body, data[start:end+1]))
				}
			}
		})
	}
	wg.Wait()
	for range 3 * clients {
		<-served
	}
	if zc := m.Stats().ZeroCopyBytes - before; zc != 3*want {
		t.Errorf("%d bytes sent without copies, want %d", zc, 3*want)
	}
	if off, _ := b.Seek(0, io.SeekCurrent); off != 42 {
		t.Errorf("the Buffer's offset moved to %d", off)
	}
}
