package spoolhttp_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"testing"

	"github.com/spoolkit/spool"
	"github.com/spoolkit/spool/spoolhttp"
)

// newManager returns a Manager with spill files in a test directory,
// closed when the test ends.
func newManager(t testing.TB, o spool.Options) *spool.Manager {
	t.Helper()
	if o.TempDir == "" {
		o.TempDir = t.TempDir()
	}
	m, err := spool.NewManager(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// tinyManager returns a Manager with a 16 KiB budget of 4 KiB chunks, so
// that anything larger spills.
func tinyManager(t testing.TB) *spool.Manager {
	return newManager(t, spool.Options{MemoryBudget: 16 << 10, ChunkSize: 4 << 10})
}

// checkClean fails the test if m has live buffers.
func checkClean(t testing.TB, m *spool.Manager) {
	t.Helper()
	if s := m.Stats(); s.Buffers != 0 || s.MemoryInUse != 0 {
		t.Errorf("%d buffers live, %d bytes of memory in use; want none", s.Buffers, s.MemoryInUse)
	}
}

// part is one part of a test form. With raw set, header is the whole MIME
// header; otherwise it is built from name and filename.
type part struct {
	name, filename string
	body           []byte
	header         textproto.MIMEHeader
	raw            bool
}

func value(name, v string) part { return part{name: name, body: []byte(v)} }

func file(name, filename string, body []byte) part {
	return part{name: name, filename: filename, body: body}
}

// formBody encodes parts as a multipart/form-data body.
func formBody(t testing.TB, parts ...part) (body []byte, contentType string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, p := range parts {
		h := make(textproto.MIMEHeader)
		for k, v := range p.header {
			h[k] = v
		}
		if !p.raw {
			cd := fmt.Sprintf("form-data; name=%q", p.name)
			if p.filename != "" {
				cd += fmt.Sprintf("; filename=%q", p.filename)
				if h.Get("Content-Type") == "" {
					h.Set("Content-Type", "application/octet-stream")
				}
			}
			h.Set("Content-Disposition", cd)
		}
		pw, err := w.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		pw.Write(p.body)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), w.FormDataContentType()
}

// readForm parses body with ReadForm.
func readForm(body []byte, contentType string, m *spool.Manager, lim spoolhttp.Limits) (*spoolhttp.Form, error) {
	req, _ := http.NewRequest("POST", "/", bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	return spoolhttp.ParseMultipartForm(req, m, lim)
}

// randBytes returns n pseudo-random bytes from r.
func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// contents reads a FileHeader's file through Open.
func contents(t testing.TB, fh *spoolhttp.FileHeader) []byte {
	t.Helper()
	f, err := fh.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
