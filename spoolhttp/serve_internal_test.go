package spoolhttp

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/spoolkit/spool"
)

// TestSendWriter: sendWriter's ReadFrom writes exactly the N bytes of an
// *io.LimitedReader of its content from content's offset, and advances
// both as a copy through Read would; any other source is copied as is;
// http.ResponseController reaches the wrapped ResponseWriter.
func TestSendWriter(t *testing.T) {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 16 << 10, ChunkSize: 4 << 10, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b, _ := m.NewBuffer()
	defer b.Close()
	data := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), 1000)
	b.Write(data)
	b.Rollover()

	rec := httptest.NewRecorder()
	content := b.NewSectionReader(0, b.Size())
	sw := &sendWriter{ResponseWriter: rec, b: b, content: content}
	content.Seek(100, io.SeekStart)
	lr := &io.LimitedReader{R: content, N: 10000}
	if n, err := io.Copy(sw, lr); n != 10000 || err != nil || lr.N != 0 {
		t.Fatalf("Copy = %d, %v; N = %d", n, err, lr.N)
	}
	if off, _ := content.Seek(0, io.SeekCurrent); off != 10100 {
		t.Errorf("content's offset %d, want 10100", off)
	}
	if n, err := io.CopyN(sw, content, 50); n != 50 || err != nil {
		t.Errorf("CopyN = %d, %v", n, err)
	}
	// Past the end: what is left, and io.EOF from CopyN.
	if n, err := io.CopyN(sw, content, 1<<20); n != int64(len(data))-10150 || err != io.EOF {
		t.Errorf("CopyN past the end = %d, %v", n, err)
	}
	if !bytes.Equal(rec.Body.Bytes(), data[100:]) {
		t.Errorf("wrote %d bytes, not data[100:]", rec.Body.Len())
	}

	// Another source, or a LimitedReader of another reader: copied.
	rec.Body.Reset()
	other := b.NewReader()
	if n, err := io.CopyN(sw, other, 20); n != 20 || err != nil || rec.Body.String() != string(data[:20]) {
		t.Errorf("other Reader: %d, %v, %q", n, err, rec.Body)
	}
	if n, err := io.Copy(sw, strings.NewReader("tail")); n != 4 || err != nil || !strings.HasSuffix(rec.Body.String(), "tail") {
		t.Errorf("strings.Reader: %d, %v", n, err)
	}

	if err := http.NewResponseController(sw).Flush(); err != nil || !rec.Flushed {
		t.Errorf("Flush through ResponseController: %v, flushed %v", err, rec.Flushed)
	}
}
