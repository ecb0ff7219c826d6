// Command uploadserver is a small file server whose uploads, however many
// and however large, share one spool Manager's memory budget: what does
// not fit goes to spill files.
//
//	uploadserver -addr 127.0.0.1:8080 -budget 67108864
//
// Endpoints:
//
//	POST   /upload         store the request body, or the one file part of a
//	                       multipart/form-data body; replies 201 Created
//	                       with {"id": ..., "size": ..., "sha256": ...}
//	GET    /download/{id}  the stored file; Range and conditional requests
//	                       work (the ETag is the quoted sha256)
//	DELETE /files/{id}     forget the file; replies 204 No Content
//	GET    /stats          the Manager's spool.Stats as JSON
//
// Files live in memory or in spill files until deleted or until the server
// stops: spill files are anonymous, so nothing is left on disk.
//
// Try it with curl:
//
//	curl --data-binary @photo.jpg -H 'Content-Type: application/octet-stream' localhost:8080/upload
//	curl -F file=@photo.jpg localhost:8080/upload
//	curl -o copy.jpg localhost:8080/download/ID
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log"
	"mime"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spoolkit/spool"
	"github.com/spoolkit/spool/spoolhttp"
)

// maxUpload is the largest upload accepted, in bytes.
const maxUpload = 1 << 30

// server holds the uploaded files. Its methods are http handlers, safe for
// concurrent use.
type server struct {
	m *spool.Manager

	mu    sync.Mutex
	files map[string]*entry
}

// An entry is one stored file. Its Buffer is closed when the last of its
// references is released: the map's, dropped by DELETE, and one per
// download in progress, so a DELETE never cuts a download short.
type entry struct {
	buf     *spool.Buffer // not written after upload
	name    string        // file name of a multipart upload, or ""
	sum     string        // hex sha256
	created time.Time
	refs    int // guarded by server.mu
}

// uploadResponse is the JSON reply to an upload.
type uploadResponse struct {
	ID     string `json:"id"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// newServer returns the server's handler, storing files in m. The caller
// closes m when the server has stopped, which closes every file.
func newServer(m *spool.Manager) http.Handler {
	s := &server{m: m, files: make(map[string]*entry)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /upload", s.upload)
	mux.HandleFunc("GET /download/{id}", s.download)
	mux.HandleFunc("DELETE /files/{id}", s.delete)
	mux.HandleFunc("GET /stats", s.stats)
	return mux
}

func (s *server) upload(w http.ResponseWriter, r *http.Request) {
	var (
		buf  *spool.Buffer
		name string
		err  error
	)
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		form, err := spoolhttp.ParseMultipartForm(r, s.m, spoolhttp.Limits{MaxTotalBytes: maxUpload})
		if err != nil {
			fail(w, err)
			return
		}
		defer form.RemoveAll() // the values, other parts
		var files []*spoolhttp.FileHeader
		for _, fhs := range form.File {
			for _, fh := range fhs {
				if fh.Filename != "" {
					files = append(files, fh)
				}
			}
		}
		if len(files) != 1 {
			http.Error(w, "a multipart upload must hold exactly one file", http.StatusBadRequest)
			return
		}
		name, buf = files[0].Filename, files[0].Detach()
	} else if buf, err = spoolhttp.ReadBody(r, s.m, maxUpload); err != nil {
		fail(w, err)
		return
	}

	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(buf, 0, buf.Size())); err != nil {
		buf.Close()
		fail(w, err)
		return
	}
	e := &entry{buf: buf, name: name, sum: hex.EncodeToString(h.Sum(nil)), created: time.Now(), refs: 1}
	id := rand.Text()
	s.mu.Lock()
	s.files[id] = e
	s.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/download/"+id)
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(uploadResponse{ID: id, Size: buf.Size(), SHA256: e.sum})
}

func (s *server) download(w http.ResponseWriter, r *http.Request) {
	e := s.acquire(r.PathValue("id"))
	if e == nil {
		http.NotFound(w, r)
		return
	}
	defer s.release(e)
	w.Header().Set("ETag", `"`+e.sum+`"`)
	if e.name != "" {
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": e.name}))
	}
	spoolhttp.ServeBuffer(w, r, e.name, e.created, e.buf)
}

func (s *server) delete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	e := s.files[id]
	delete(s.files, id)
	s.mu.Unlock()
	if e == nil {
		http.NotFound(w, r)
		return
	}
	s.release(e)
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) stats(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s.m.Stats())
}

// acquire returns the entry id with a reference taken, or nil.
func (s *server) acquire(id string) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.files[id]
	if e != nil {
		e.refs++
	}
	return e
}

// release drops a reference to e, closing its Buffer with the last.
func (s *server) release(e *entry) {
	s.mu.Lock()
	e.refs--
	last := e.refs == 0
	s.mu.Unlock()
	if last {
		e.buf.Close()
	}
}

// fail replies to a request that failed with err, logging server errors.
func fail(w http.ResponseWriter, err error) {
	if spoolhttp.StatusCode(err) >= 500 {
		log.Printf("upload: %v", err)
	}
	spoolhttp.Error(w, err)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	budget := flag.Int64("budget", spool.DefaultMemoryBudget, "memory budget in bytes, shared by all files")
	diskBudget := flag.Int64("disk-budget", 0, "limit on the bytes of spill files; 0 for none")
	tempDir := flag.String("tempdir", "", "directory for spill files (default: the system's)")
	flag.Parse()

	m, err := spool.NewManager(spool.Options{MemoryBudget: *budget, DiskBudget: *diskBudget, TempDir: *tempDir})
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: *addr, Handler: newServer(m), ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdown); err != nil {
			log.Printf("shutdown: %v", err)
		}
	}()

	log.Printf("listening on http://%s, memory budget %d bytes", *addr, *budget)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	<-stopped
	if err := m.Close(); err != nil {
		log.Print(err)
	}
}
