package spoolhttp_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/spoolkit/spool"
	"github.com/spoolkit/spool/spoolhttp"
)

// zipFile returns a zip archive of files name -> contents.
func zipFile(t testing.TB, files map[string][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for name, data := range files {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestReadBodyZip: a spooled body, spilled to disk, opens with
// zip.NewReader and reads several times.
func TestReadBodyZip(t *testing.T) {
	m := tinyManager(t)
	r := rand.New(rand.NewPCG(5, 6))
	files := map[string][]byte{"a.bin": randBytes(r, 70<<10), "b/c.txt": []byte("hello"), "empty": nil}
	archive := zipFile(t, files)
	req := httptest.NewRequest("POST", "/", bytes.NewReader(archive))
	req.ContentLength = -1 // as if chunked: no early check
	buf, err := spoolhttp.ReadBody(req, m, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	if !buf.OnDisk() || buf.Size() != int64(len(archive)) {
		t.Errorf("on disk %v, size %d of %d", buf.OnDisk(), buf.Size(), len(archive))
	}
	zr, err := zip.NewReader(buf, buf.Size())
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != len(files) {
		t.Fatalf("%d files in the archive, want %d", len(zr.File), len(files))
	}
	for _, zf := range zr.File {
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, files[zf.Name]) {
			t.Errorf("%s: %v, contents differ", zf.Name, err)
		}
	}
	// Rewound: it reads from the start, and again after a Seek.
	for range 2 {
		got, err := io.ReadAll(buf)
		if err != nil || !bytes.Equal(got, archive) {
			t.Fatalf("reading the body: %v", err)
		}
		buf.Seek(0, io.SeekStart)
	}
	buf.Close()
	checkClean(t, m)
}

func TestReadBodyLimit(t *testing.T) {
	m := newManager(t, spool.Options{MemoryBudget: 16 << 10, ChunkSize: 4 << 10})
	body := bytes.Repeat([]byte("z"), 10000)
	tests := []struct {
		name          string
		size          int
		contentLength int64 // -1: unknown
		max           int64
		ok            bool
	}{
		{"under", 10000, -1, 10001, true},
		{"at limit", 10000, -1, 10000, true},
		{"over, streamed", 10000, -1, 9999, false},
		{"over, announced", 10000, 10000, 9999, false},
		{"zero: the default, empty", 0, 0, 0, true},
		{"zero: the default, streamed", 10000, -1, 0, true},
		{"zero: the default, announced", 10000, 10000, 0, true},
		{"zero: over the default, announced", 0, spoolhttp.DefaultMaxTotalBytes + 1, 0, false},
		{"one refuses two bytes", 2, -1, 1, false},
		{"negative: no limit", 10000, -1, -1, true},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("POST", "/", bytes.NewReader(body[:tt.size]))
		req.ContentLength = tt.contentLength
		buf, err := spoolhttp.ReadBody(req, m, tt.max)
		if tt.ok {
			if err != nil || buf.Size() != int64(tt.size) {
				t.Errorf("%s: %v", tt.name, err)
			} else {
				buf.Close()
			}
		} else {
			if !errors.Is(err, spoolhttp.ErrTooLarge) || buf != nil {
				t.Errorf("%s: got %v, want ErrTooLarge", tt.name, err)
			}
			if code := spoolhttp.StatusCode(err); code != http.StatusRequestEntityTooLarge {
				t.Errorf("%s: status %d", tt.name, code)
			}
		}
		checkClean(t, m)
	}
}

// TestReadBodyErrors: a body that fails to read gives ErrMalformed, a
// full disk budget its own error; no buffer is left either way.
func TestReadBodyErrors(t *testing.T) {
	m := newManager(t, spool.Options{MemoryBudget: 16 << 10, ChunkSize: 4 << 10, DiskBudget: 32 << 10})
	broken := io.MultiReader(bytes.NewReader(make([]byte, 20000)), iotest.ErrReader(io.ErrUnexpectedEOF))
	req := httptest.NewRequest("POST", "/", broken)
	_, err := spoolhttp.ReadBody(req, m, -1)
	if !errors.Is(err, spoolhttp.ErrMalformed) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("broken body: %v", err)
	}
	if code := spoolhttp.StatusCode(err); code != http.StatusBadRequest {
		t.Errorf("broken body: status %d", code)
	}
	checkClean(t, m)

	req = httptest.NewRequest("POST", "/", bytes.NewReader(make([]byte, 100<<10)))
	_, err = spoolhttp.ReadBody(req, m, -1)
	if !errors.Is(err, spool.ErrDiskBudget) || spoolhttp.StatusCode(err) != http.StatusInsufficientStorage {
		t.Errorf("disk budget: %v", err)
	}
	checkClean(t, m)
}

// TestSpoolBody: the handler reads r.Body, then the same bytes again
// through Body(r); the middleware closes the buffer afterwards.
func TestSpoolBody(t *testing.T) {
	m := tinyManager(t)
	data := randBytes(rand.New(rand.NewPCG(7, 8)), 50<<10)
	var handled int
	h := spoolhttp.SpoolBody(m, 1<<20)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handled++
		first, err := io.ReadAll(r.Body)
		if err != nil || !bytes.Equal(first, data) {
			t.Errorf("r.Body: %v", err)
		}
		b := spoolhttp.Body(r)
		if b == nil || r.ContentLength != int64(len(data)) {
			t.Fatalf("Body = %v, ContentLength %d", b, r.ContentLength)
		}
		b.Seek(0, io.SeekStart)
		second, _ := io.ReadAll(b)
		if !bytes.Equal(second, data) {
			t.Error("second read differs")
		}
		fmt.Fprint(w, len(first))
	}))
	w := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/", bytes.NewReader(data))
	req.ContentLength = -1
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK || w.Body.String() != fmt.Sprint(len(data)) || handled != 1 {
		t.Errorf("%d %q", w.Code, w.Body)
	}
	checkClean(t, m)

	// Too large: 413, and the handler is not called.
	w = httptest.NewRecorder()
	h2 := spoolhttp.SpoolBody(m, 1000)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("handler called") }))
	req = httptest.NewRequest("POST", "/", bytes.NewReader(data))
	req.ContentLength = -1
	h2.ServeHTTP(w, req)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("too large: %d %q", w.Code, w.Body)
	}
	checkClean(t, m)

	// A handler that panics still gets its buffer closed.
	h3 := spoolhttp.SpoolBody(m, -1)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
	func() {
		defer func() { recover() }()
		h3.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/", bytes.NewReader(data)))
	}()
	checkClean(t, m)

	if b := spoolhttp.Body(httptest.NewRequest("GET", "/", nil)); b != nil {
		t.Errorf("Body without the middleware: %v", b)
	}
}

// TestSpoolBodyServer: through a real server on loopback, an oversized
// body is refused with 413 by the middleware's http.MaxBytesReader.
func TestSpoolBodyServer(t *testing.T) {
	m := tinyManager(t)
	srv := httptest.NewServer(spoolhttp.SpoolBody(m, 100<<10)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n)
	})))
	defer srv.Close()
	for _, size := range []int{0, 1, 100 << 10, 100<<10 + 1, 1 << 20} {
		resp, err := srv.Client().Post(srv.URL, "application/octet-stream", io.NopCloser(strings.NewReader(strings.Repeat("q", size))))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if size <= 100<<10 {
			if resp.StatusCode != http.StatusOK || string(got) != fmt.Sprint(size) {
				t.Errorf("%d bytes: %d %q", size, resp.StatusCode, got)
			}
		} else if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%d bytes: %d %q", size, resp.StatusCode, got)
		}
	}
	srv.Close()
	checkClean(t, m)
}

// TestSpoolBodyLimitZeroNegative: SpoolBody's maxBytes of 0 means
// DefaultMaxTotalBytes, as a zero Limits field means its default, not
// "only an empty body"; a negative maxBytes means no limit.
func TestSpoolBodyLimitZeroNegative(t *testing.T) {
	m := tinyManager(t)
	data := randBytes(rand.New(rand.NewPCG(17, 18)), 100<<10)
	tests := []struct {
		name          string
		max           int64
		size          int
		contentLength int64 // -1: unknown
		code          int
	}{
		{"zero: 5 bytes", 0, 5, -1, http.StatusOK},
		{"zero: empty", 0, 0, 0, http.StatusOK},
		{"zero: spilled", 0, len(data), int64(len(data)), http.StatusOK},
		{"zero: announced at the default", 0, 5, spoolhttp.DefaultMaxTotalBytes, http.StatusOK},
		{"zero: announced past the default", 0, 5, spoolhttp.DefaultMaxTotalBytes + 1, http.StatusRequestEntityTooLarge},
		{"negative: announced past the default", -1, 5, spoolhttp.DefaultMaxTotalBytes + 1, http.StatusOK},
		{"very negative: spilled", -1 << 40, len(data), -1, http.StatusOK},
		{"positive: over", 4, 5, -1, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		called := false
		h := spoolhttp.SpoolBody(m, tt.max)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			called = true
			got, err := io.ReadAll(r.Body)
			if err != nil || !bytes.Equal(got, data[:tt.size]) || r.ContentLength != int64(tt.size) {
				t.Errorf("%s: %v, %d bytes, ContentLength %d", tt.name, err, len(got), r.ContentLength)
			}
		}))
		req := httptest.NewRequest("POST", "/", bytes.NewReader(data[:tt.size]))
		req.ContentLength = tt.contentLength
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != tt.code || called != (tt.code == http.StatusOK) {
			t.Errorf("%s: %d %q, handler called %v; want %d", tt.name, w.Code, w.Body, called, tt.code)
		}
		checkClean(t, m)
	}
}
