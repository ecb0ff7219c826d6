package main

import (
	"bytes"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/spoolkit/spool"
)

// An Impl is one way for a server to hold an upload until it has been
// read back. To add one (say, a spool Manager per buffer, as
// mime/multipart would use), write its Store and add it to impls.
type Impl struct {
	Name  string // for -impl and JSON
	Label string // for the table
	Open  func(cfg Config) (Store, error)
}

// A Store hands out Sinks, one per upload. Its methods are called from many
// goroutines at once.
type Store interface {
	New() (Sink, error)
	// Stats is called once all Sinks are closed.
	Stats() StoreStats
	Close() error
}

// A Sink holds one upload: it is written sequentially, read back once from
// the start, and closed. It is used by one goroutine.
type Sink interface {
	io.Writer
	// ReadBack writes everything written so far to w, from the start.
	ReadBack(w io.Writer) (int64, error)
	Close() error
}

// StoreStats says what a Store did besides holding bytes in memory.
type StoreStats struct {
	Budget       int64            `json:"budget,omitempty"`        // memory budget, if the store has one
	Spills       int64            `json:"spills"`                  // rollovers to disk
	SpilledBytes int64            `json:"spilled_bytes"`           // bytes copied from memory to disk by rollovers
	DirectBytes  int64            `json:"direct_bytes"`            // bytes written straight to a file
	DiskBytes    int64            `json:"disk_bytes"`              // all bytes written to files: SpilledBytes + DirectBytes
	Files        int64            `json:"files"`                   // files created
	SpillErrors  int64            `json:"spill_errors"`            // failed rollovers
	SpillReasons map[string]int64 `json:"spill_reasons,omitempty"` // rollovers by reason
}

// baselineImpl is the implementation the ratio column compares with.
const baselineImpl = "bytes"

var impls = []Impl{
	{Name: "bytes", Label: "bytes.Buffer", Open: openBytes},
	{Name: "tempfile", Label: "os.CreateTemp", Open: openTempFile},
	{Name: "spool", Label: "spool", Open: openSpool},
}

func lookupImpl(name string) (Impl, bool) {
	for _, im := range impls {
		if im.Name == name {
			return im, true
		}
	}
	return Impl{}, false
}

// uploadVariants lists the implementations for the uploads scenario.
func uploadVariants() []variant {
	var vs []variant
	for _, im := range impls {
		vs = append(vs, variant{Name: im.Name, Label: im.Label})
	}
	return vs
}

func implNames() []string {
	var names []string
	for _, im := range impls {
		names = append(names, im.Name)
	}
	return names
}

// bytes: a plain bytes.Buffer per upload, dropped on Close.

type bytesStore struct{}

func openBytes(Config) (Store, error) { return bytesStore{}, nil }

func (bytesStore) New() (Sink, error) { return &bytesSink{}, nil }
func (bytesStore) Stats() StoreStats  { return StoreStats{} }
func (bytesStore) Close() error       { return nil }

type bytesSink struct{ b bytes.Buffer }

func (s *bytesSink) Write(p []byte) (int, error) { return s.b.Write(p) }

func (s *bytesSink) ReadBack(w io.Writer) (int64, error) {
	return io.Copy(w, bytes.NewReader(s.b.Bytes()))
}

func (s *bytesSink) Close() error {
	s.b = bytes.Buffer{} // drop the memory, as a handler returning would
	return nil
}

// tempfile: os.CreateTemp per upload; Close closes and removes it.

type tempFileStore struct {
	dir   string
	files atomic.Int64
	bytes atomic.Int64
}

func openTempFile(cfg Config) (Store, error) {
	return &tempFileStore{dir: cfg.TempDir}, nil
}

func (s *tempFileStore) New() (Sink, error) {
	f, err := os.CreateTemp(s.dir, "spoolbench-*")
	if err != nil {
		return nil, err
	}
	s.files.Add(1)
	return &tempFileSink{f: f, s: s}, nil
}

func (s *tempFileStore) Stats() StoreStats {
	n := s.bytes.Load()
	return StoreStats{DirectBytes: n, DiskBytes: n, Files: s.files.Load()}
}

func (s *tempFileStore) Close() error { return nil }

type tempFileSink struct {
	f *os.File
	s *tempFileStore
}

func (t *tempFileSink) Write(p []byte) (int, error) {
	n, err := t.f.Write(p)
	t.s.bytes.Add(int64(n))
	return n, err
}

func (t *tempFileSink) ReadBack(w io.Writer) (int64, error) {
	if _, err := t.f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	return io.Copy(w, t.f)
}

func (t *tempFileSink) Close() error {
	err := t.f.Close()
	if rerr := os.Remove(t.f.Name()); err == nil {
		err = rerr
	}
	return err
}

// spool: one Manager with the budget for all uploads, a Buffer per upload.
// Stats().DiskWritten counts every byte written to spill files; OnSpill
// records which buffers rolled over, and why.

type spoolStore struct {
	m *spool.Manager

	mu      sync.Mutex
	spilled map[uint64]bool  // buffers that rolled over
	reasons map[string]int64 // completed rollovers by reason
}

func openSpool(cfg Config) (Store, error) {
	s := &spoolStore{
		spilled: make(map[uint64]bool),
		reasons: make(map[string]int64),
	}
	m, err := spool.NewManager(spool.Options{
		MemoryBudget: cfg.Budget,
		TempDir:      cfg.TempDir,
		OnSpill:      s.onSpill,
	})
	if err != nil {
		return nil, err
	}
	s.m = m
	return s, nil
}

func (s *spoolStore) onSpill(e spool.SpillEvent) {
	if e.Err != nil {
		return // counted in Stats().SpillErrors
	}
	s.mu.Lock()
	s.spilled[e.Buffer] = true
	s.reasons[e.Reason.String()]++
	s.mu.Unlock()
}

func (s *spoolStore) New() (Sink, error) {
	b, err := s.m.NewBuffer()
	if err != nil {
		return nil, err
	}
	return &spoolSink{b: b, s: s}, nil
}

func (s *spoolStore) Stats() StoreStats {
	st := s.m.Stats()
	s.mu.Lock()
	defer s.mu.Unlock()
	disk := st.DiskWritten
	reasons := make(map[string]int64, len(s.reasons))
	for r, n := range s.reasons {
		reasons[r] = n
	}
	return StoreStats{
		Budget:       st.MemoryBudget,
		Spills:       st.Spills,
		SpilledBytes: st.SpilledBytes,
		DirectBytes:  disk - st.SpilledBytes,
		DiskBytes:    disk,
		Files:        int64(len(s.spilled)),
		SpillErrors:  st.SpillErrors,
		SpillReasons: reasons,
	}
}

func (s *spoolStore) Close() error { return s.m.Close() }

type spoolSink struct {
	b *spool.Buffer
	s *spoolStore
}

func (t *spoolSink) Write(p []byte) (int, error) { return t.b.Write(p) }

func (t *spoolSink) ReadBack(w io.Writer) (int64, error) {
	if _, err := t.b.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	return io.Copy(w, t.b)
}

func (t *spoolSink) Close() error { return t.b.Close() }
