package spoolhttp_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
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
