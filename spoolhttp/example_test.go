package spoolhttp_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"log"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/spoolkit/spool"
	"github.com/spoolkit/spool/spoolhttp"
)

// An upload handler: the files of every form go into Buffers of one
// Manager, so all uploads in progress share its memory budget.
func ExampleParseMultipartForm() {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	upload := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form, err := spoolhttp.ParseMultipartForm(r, m, spoolhttp.Limits{MaxTotalBytes: 100 << 20})
		if err != nil {
			spoolhttp.Error(w, err) // 413, 400, 507, ... as StatusCode says
			return
		}
		defer form.RemoveAll()
		fmt.Fprintf(w, "title: %s\n", form.Value["title"][0])
		for _, fh := range form.File["files"] {
			f, _ := fh.Open()
			h := sha256.New()
			io.Copy(h, f)
			fmt.Fprintf(w, "%s: %d bytes, sha256 %x...\n", fh.Filename, fh.Size, h.Sum(nil)[:4])
		}
	})

	// A test request with a value and two files.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("title", "holiday")
	fw, _ := mw.CreateFormFile("files", "a.txt")
	fw.Write([]byte("hello, world\n"))
	fw, _ = mw.CreateFormFile("files", "b.bin")
	fw.Write(make([]byte, 3<<20)) // larger than the budget: spills to disk
	mw.Close()
	req := httptest.NewRequest("POST", "/upload", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	w := httptest.NewRecorder()
	upload.ServeHTTP(w, req)

	fmt.Print(w.Body)
	fmt.Println("buffers left:", m.Stats().Buffers)
	// Output:
	// title: holiday
	// a.txt: 13 bytes, sha256 853ff937...
	// b.bin: 3145728 bytes, sha256 bbd05cf6...
	// buffers left: 0
}

// Middleware that spools each request body, so the handler can read it
// twice.
func ExampleSpoolBody() {
	m, err := spool.NewManager(spool.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	h := spoolhttp.SpoolBody(m, 1<<20)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first, _ := io.ReadAll(r.Body)
		body := spoolhttp.Body(r)
		body.Seek(0, io.SeekStart)
		second, _ := io.ReadAll(body)
		fmt.Fprintf(w, "%q read twice: %v", first, bytes.Equal(first, second))
	}))

	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/", strings.NewReader("payload")))
	fmt.Println(w.Body)

	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/", bytes.NewReader(make([]byte, 2<<20))))
	fmt.Println(w.Code)
	// Output:
	// "payload" read twice: true
	// 413
}

// Serving part of a Buffer with a Range request.
func ExampleServeBuffer() {
	m, err := spool.NewManager(spool.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	b, _ := m.NewBuffer()
	b.WriteString("0123456789abcdef")

	req := httptest.NewRequest("GET", "/file.txt", nil)
	req.Header.Set("Range", "bytes=10-")
	w := httptest.NewRecorder()
	spoolhttp.ServeBuffer(w, req, "file.txt", time.Time{}, b)
	fmt.Println(w.Code, w.Header().Get("Content-Range"), w.Header().Get("Content-Type"))
	fmt.Println(w.Body)
	// Output:
	// 206 bytes 10-15/16 text/plain; charset=utf-8
	// abcdef
}
