package main

import (
	"bytes"
	"io"
	"os"
	"sync"
	"sync/atomic"

	djbuffer "github.com/djherbis/buffer"

	"github.com/spoolkit/spool"
)

// An Impl is one way for a server to hold an upload until it has been
// read back. To add one, write its Store and add it to impls.
type Impl struct {
	Name  string // for -impl and JSON
	Label string // for the table
	Open  func(cfg Config) (Store, error)
	// PerBuffer marks a per-buffer spool: each upload in memory up to
	// cfg.Threshold, then in a file of its own. Its RAM bound is
	// clients × threshold; the targets compare spool with the best of them.
	PerBuffer bool
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

// spoolImpl is the implementation under test; every other one is a peer.
const spoolImpl = "spool"

var impls = []Impl{
	{Name: "bytes", Label: "bytes.Buffer", Open: openBytes},
	{Name: "tempfile", Label: "os.CreateTemp", Open: openTempFile},
	{Name: "multipart", Label: "multipart-style", Open: openMultipart, PerBuffer: true},
	{Name: "djherbis", Label: "djherbis/buffer", Open: openDjherbis, PerBuffer: true},
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

// tempFile is a temporary file of the tempfile and multipart stores and
// of the djherbis file pool: an *os.File from os.CreateTemp, by way of
// createTemp.
type tempFile interface {
	io.Reader
	io.Writer
	io.Seeker
	io.ReaderAt
	io.WriterAt
	Name() string
	Stat() (os.FileInfo, error)
	Close() error
}

// createTemp is os.CreateTemp for the stores. Tests replace it to count
// what reaches the files at the file level, independently of the stores'
// own accounting (TestUploadsEveryImpl).
var createTemp = func(dir, pattern string) (tempFile, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err // not a nil *os.File in a non-nil interface
	}
	return f, nil
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
	f, err := createTemp(s.dir, "spoolbench-*")
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
	f tempFile
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
	ss := spoolStoreStats(s.m.Stats())
	s.mu.Lock()
	defer s.mu.Unlock()
	ss.SpillReasons = make(map[string]int64, len(s.reasons))
	for r, n := range s.reasons {
		ss.SpillReasons[r] = n
	}
	return ss
}

// spoolStoreStats returns what a Manager's Stats say of it as a store.
func spoolStoreStats(st spool.Stats) StoreStats {
	return StoreStats{
		Budget:       st.MemoryBudget,
		Spills:       st.Spills,
		SpilledBytes: st.SpilledBytes,
		DirectBytes:  st.DiskWritten - st.SpilledBytes,
		DiskBytes:    st.DiskWritten,
		Files:        int64(st.SpillFiles), // the arena's, shared by every spilled buffer
		SpillErrors:  st.SpillErrors,
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

// multipart: a per-buffer spool as mime/multipart's ReadForm makes one for
// each file part: the upload goes into a bytes.Buffer until it would pass
// cfg.Threshold (1 MiB by default), then the buffered bytes and everything
// after go to a temporary file of its own, and the memory is dropped. RAM
// is bounded by clients × threshold (in bytes.Buffer capacity, which
// doubles as it grows), whatever the budget.

type multipartStore struct {
	dir       string
	threshold int64
	spills    atomic.Int64
	spilled   atomic.Int64 // bytes moved from memory to the file at the switch
	direct    atomic.Int64 // bytes written to the file after it
}

func openMultipart(cfg Config) (Store, error) {
	return &multipartStore{dir: cfg.TempDir, threshold: cfg.Threshold}, nil
}

func (s *multipartStore) New() (Sink, error) { return &multipartSink{s: s}, nil }

func (s *multipartStore) Stats() StoreStats {
	sp, d := s.spilled.Load(), s.direct.Load()
	return StoreStats{Spills: s.spills.Load(), SpilledBytes: sp, DirectBytes: d, DiskBytes: sp + d, Files: s.spills.Load()}
}

func (s *multipartStore) Close() error { return nil }

type multipartSink struct {
	s   *multipartStore
	mem bytes.Buffer
	f   tempFile
}

func (t *multipartSink) Write(p []byte) (int, error) {
	if t.f == nil {
		if int64(t.mem.Len()+len(p)) <= t.s.threshold {
			return t.mem.Write(p)
		}
		f, err := createTemp(t.s.dir, "multipart-")
		if err != nil {
			return 0, err
		}
		t.f = f
		t.s.spills.Add(1)
		n, err := f.Write(t.mem.Bytes())
		t.s.spilled.Add(int64(n))
		t.mem = bytes.Buffer{} // the memory is garbage from here on
		if err != nil {
			return 0, err
		}
	}
	n, err := t.f.Write(p)
	t.s.direct.Add(int64(n))
	return n, err
}

func (t *multipartSink) ReadBack(w io.Writer) (int64, error) {
	if t.f == nil {
		return io.Copy(w, bytes.NewReader(t.mem.Bytes()))
	}
	if _, err := t.f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	return io.Copy(w, t.f)
}

func (t *multipartSink) Close() error {
	t.mem = bytes.Buffer{}
	if t.f == nil {
		return nil
	}
	err := t.f.Close()
	if rerr := os.Remove(t.f.Name()); err == nil {
		err = rerr
	}
	return err
}

// djherbis: github.com/djherbis/buffer's memory-then-file buffer, as its
// NewUnboundedBuffer builds it: NewMulti(New(mem), NewPartition(file
// pool)), with mem = cfg.Threshold and files as large as the largest
// upload (one file per upload that passes the threshold), in cfg.TempDir.
// It is a FIFO: ReadBack consumes it, moving the file's bytes up into the
// memory part as it goes (Defrag). The file pool is djbuffer.NewFilePool's
// (ioutil.TempFile(dir, "buffer"), NewFile(N, file); Put resets, closes
// and removes), with its files from createTemp, counting files and the
// bytes written to its buffers.

type djherbisStore struct {
	dir      string
	mem      int64
	fileSize int64
	files    atomic.Int64
	bytes    atomic.Int64
}

func openDjherbis(cfg Config) (Store, error) {
	return &djherbisStore{dir: cfg.TempDir, mem: cfg.Threshold, fileSize: max(cfg.MaxSize, 1<<20)}, nil
}

func (s *djherbisStore) New() (Sink, error) {
	return &djherbisSink{b: djbuffer.NewMulti(djbuffer.New(s.mem), djbuffer.NewPartition(djherbisPool{s}))}, nil
}

func (s *djherbisStore) Stats() StoreStats {
	n := s.bytes.Load()
	return StoreStats{Spills: s.files.Load(), DirectBytes: n, DiskBytes: n, Files: s.files.Load()}
}

func (s *djherbisStore) Close() error { return nil }

// djherbisPool is the file pool of a djherbis store.
type djherbisPool struct{ s *djherbisStore }

func (p djherbisPool) Get() (djbuffer.Buffer, error) {
	f, err := createTemp(p.s.dir, "buffer")
	if err != nil {
		return nil, err
	}
	p.s.files.Add(1)
	return &countingBuffer{Buffer: djbuffer.NewFile(p.s.fileSize, f), f: f, n: &p.s.bytes}, nil
}

func (p djherbisPool) Put(b djbuffer.Buffer) error {
	b.Reset()
	c, ok := b.(*countingBuffer)
	if !ok {
		return nil
	}
	c.f.Close()
	return os.Remove(c.f.Name())
}

// countingBuffer is a file buffer of a djherbis pool; it counts the bytes
// written to it.
type countingBuffer struct {
	djbuffer.Buffer
	f tempFile
	n *atomic.Int64
}

func (c *countingBuffer) Write(p []byte) (int, error) {
	n, err := c.Buffer.Write(p)
	c.n.Add(int64(n))
	return n, err
}

type djherbisSink struct{ b djbuffer.Buffer }

func (t *djherbisSink) Write(p []byte) (int, error) { return t.b.Write(p) }

func (t *djherbisSink) ReadBack(w io.Writer) (int64, error) { return io.Copy(w, t.b) }

func (t *djherbisSink) Close() error {
	t.b.Reset() // puts the files back to the pool: closed and removed
	return nil
}
