package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/spoolkit/spool"
)

// tinyConfig is a workload that takes milliseconds: 8 clients, about
// 4 MiB of uploads from 1 byte to 1 MiB (so sizes that are not a multiple
// of the piece or of 8 occur), a spool budget of 4 chunks, so that spool
// rolls buffers over, and a per-buffer threshold of 100,000 bytes, so that
// the per-buffer spools move some uploads to files (not at a piece
// boundary). The other scenarios are tiny too: blobs has 1,000 blobs (about
// 3.7 MiB) under a 512 KiB budget, slow 100 uploads of 8–32 KiB under
// a 256 KiB budget, shrink takes the uploads' budget from 1 MiB to
// 256 KiB half-way, and diskwait runs the uploads under a disk budget of
// 512 KiB, well below the uploads in flight (8 of up to 1 MiB), retrying
// after 1 ms.
func tinyConfig() Config {
	cfg := defaultConfig()
	cfg.Clients = 8
	cfg.Total = 4 << 20
	cfg.MinSize = 1
	cfg.MaxSize = 1 << 20
	cfg.Budget = 256 << 10
	cfg.Threshold = 100_000
	cfg.TempDir = ""
	cfg.MicroMemSize = 256 << 10
	cfg.MicroSpillSize = 512 << 10
	cfg.MicroReps = 3
	cfg.MicroTime = 2 * time.Millisecond
	cfg.ScaleBytes = 2 << 20
	cfg.ScaleBuffers = []int{3, 200}
	cfg.ScaleBudgets = []int64{1 << 20, 2 << 20}
	cfg.ScaleLoad = 200
	cfg.BlobsCount = 1000
	cfg.BlobsBudget = 512 << 10
	cfg.BlobsReads = 3000
	cfg.SlowUploads = 100
	cfg.SlowMinSize = 8 << 10
	cfg.SlowMaxSize = 32 << 10
	cfg.SlowPause = time.Millisecond
	cfg.SlowBudget = 256 << 10
	cfg.ShrinkBudget = 1 << 20
	cfg.ShrinkTo = 256 << 10
	cfg.DiskWaitBudget = 2 << 20 // room for the largest upload, reserved (ReserveDisk)
	cfg.DiskWaitBackoff = time.Millisecond
	return cfg
}

// TestMain lets the test binary act as a bench child process, so that
// TestParentMain exercises the real re-exec protocol. With
// SPOOLBENCH_TEST_CORRUPT=1 the child's spool damages what it reads back.
//
// Under -race, the children skip the race detector's sleep at exit
// (GORACE atexit_sleep_ms, 1 s by default, to let goroutines still
// running report races), which was 26 s of the package's 44 s under
// -race (26 children). A child's workload has ended by then; a race it
// finds makes it exit 66, which fails the parent.
func TestMain(m *testing.M) {
	if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
		os.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0"))
	}
	if os.Getenv(childEnv) == "1" {
		if os.Getenv("SPOOLBENCH_TEST_CORRUPT") == "1" {
			for i := range impls {
				open := impls[i].Open
				impls[i].Open = func(cfg Config) (Store, error) {
					s, err := open(cfg)
					return &corruptStore{Store: s, mode: "flip"}, err
				}
			}
		}
		main()
	}
	os.Exit(m.Run())
}

// TestUploadsEveryImpl runs the uploads scenario in process against every
// implementation and checks each one's disk accounting (StoreStats) against
// what the test itself attributes to the implementation's files:
//
//   - for the stores of this package (tempfile, multipart, djherbis), the
//     bytes written to their files, counted at the file level: createTemp
//     hands out files that add up what each Write and WriteAt returns, and
//     the stores reach their files only through it;
//   - for spool, whose spill files are private to the library, the sizes
//     of the uploads whose buffers rolled over (by the OnSpill events the
//     store records; every buffer the test sees on disk before its upload
//     is closed must be among them): in this workload (appends only, no
//     disk budget, no promotion) a rollover moves every byte of its buffer
//     to the spill arena and later writes go there, so each byte of a
//     spilled upload is written to disk once, but for the block a rollover
//     leaves short of a chunk: the upload's next writes copy it whole
//     into an extent with room (copy on write, spill.go), at most two
//     chunks more per rollover in all.
//
// Both must match, exactly for the stores of this package. The bytes the process passed to write(2) and
// pwrite(2) (/proc/self/io wchar) are only an upper bound of those: they
// count everything else the process writes too (test output, other tests),
// not least the 8 bytes the Go runtime writes to an eventfd each time it
// wakes its network poller, as often as scheduling needs, which depends on
// timing and load (4,112 bytes over one subtest on a busy machine). The
// children of TestParentMain, which write nothing else, compare wchar
// with the accounting allowing for those (syscallWritesMatch).
func TestUploadsEveryImpl(t *testing.T) {
	cfg := tinyConfig()
	w := newWorkload(cfg.Seed, cfg.Total, cfg.MinSize, cfg.MaxSize)
	for _, impl := range impls {
		t.Run(impl.Name, func(t *testing.T) {
			cfg.TempDir = t.TempDir()
			files := countFiles(t)
			var spooled *spoolUploads
			if impl.Name == spoolImpl {
				wrapOpen(t, impl.Name, func(s Store) Store {
					spooled = &spoolUploads{Store: s, size: make(map[uint64]int64), onDisk: make(map[uint64]bool)}
					return spooled
				})
			}
			ioBefore := readProcIO()
			res, err := runUploads(cfg, Job{Impl: impl.Name, Label: impl.Label})
			ioAfter := readProcIO()
			if err != nil {
				t.Fatal(err)
			}
			if p := res.problem(); p != "" {
				t.Fatal(p)
			}
			if res.Uploads != len(w.Uploads) || res.Bytes != w.Total {
				t.Fatalf("%d uploads, %d bytes; want %d, %d", res.Uploads, res.Bytes, len(w.Uploads), w.Total)
			}
			st := res.Store
			if st.DiskBytes != st.SpilledBytes+st.DirectBytes {
				t.Errorf("%s: disk %d bytes != spilled %d + direct %d", impl.Name, st.DiskBytes, st.SpilledBytes, st.DirectBytes)
			}
			// What the test attributes to the implementation's files.
			wrote, nfiles := files.bytes.Load(), files.files.Load()
			least := wrote // the least the files got
			if spooled != nil {
				if wrote != 0 || nfiles != 0 {
					t.Fatalf("spool used createTemp: %d bytes to %d files", wrote, nfiles)
				}
				// An evicted buffer gives up only the chunks another
				// write lacks: at least one chunk of it (or all of it, if
				// smaller) went to disk, and at most all of it.
				wrote, least, nfiles = spooled.spilled(t)
			}
			slack, wantFiles := int64(0), nfiles
			if spooled != nil {
				// nfiles is the buffers that rolled over; they share the
				// spill arena's files, two per CPU at most.
				slack = 2 * spool.DefaultChunkSize * nfiles
				wantFiles = min(nfiles, int64(2*runtime.GOMAXPROCS(0)))
			}
			if st.DiskBytes < least || st.DiskBytes > wrote+slack || st.Files != wantFiles {
				t.Errorf("%s accounts for %d bytes in %d files; its files got from %d to %d bytes (up to %d more allowed), %d files", impl.Name, st.DiskBytes, st.Files, least, wrote, slack, wantFiles)
			}
			switch impl.Name {
			case "bytes":
				if st.DiskBytes != 0 || st.Files != 0 {
					t.Errorf("bytes.Buffer wrote %d bytes to %d files", st.DiskBytes, st.Files)
				}
			case "tempfile":
				if st.DiskBytes != w.Total || st.Files != int64(len(w.Uploads)) {
					t.Errorf("tempfile: %d bytes in %d files, want %d in %d", st.DiskBytes, st.Files, w.Total, len(w.Uploads))
				}
			case "multipart", "djherbis":
				// Each upload past the threshold has a file of its own;
				// multipart moves all of it there, djherbis what does
				// not fit in its memory part.
				var files, disk int64
				for _, u := range w.Uploads {
					if u.Size > cfg.Threshold {
						files++
						if impl.Name == "multipart" {
							disk += u.Size
						} else {
							disk += u.Size - cfg.Threshold
						}
					}
				}
				if files == 0 || st.Files != files || st.Spills != files || st.DiskBytes != disk {
					t.Errorf("%s: %d bytes in %d files after %d spills; want %d bytes in %d files", impl.Name, st.DiskBytes, st.Files, st.Spills, disk, files)
				}
			case "spool":
				if st.Spills == 0 || st.Files != min(st.Spills, int64(2*runtime.GOMAXPROCS(0))) {
					t.Errorf("spool with a %d-byte budget: %d spills, %d files; want some, in the arena's files", cfg.Budget, st.Spills, st.Files)
				}
				if st.SpilledBytes <= 0 || st.DirectBytes < 0 || st.DiskBytes > w.Total+2*spool.DefaultChunkSize*st.Spills {
					t.Errorf("spool: spilled %d + direct %d = %d bytes of %d", st.SpilledBytes, st.DirectBytes, st.DiskBytes, w.Total)
				}
			}
			// The bytes attributed to the files were passed to write(2)
			// or pwrite(2), with whatever else the process wrote.
			if ioBefore != nil && ioAfter != nil {
				if got := ioAfter["wchar"] - ioBefore["wchar"]; got < least {
					t.Errorf("the process passed %d bytes to write(2), less than the %d bytes its files got", got, least)
				}
			}
		})
	}
}

// fileCount counts the files createTemp made, and the bytes written to
// them.
type fileCount struct {
	files, bytes atomic.Int64
}

// countedFile is a file from createTemp, counting the bytes written to it.
// It has no other way to write than Write and WriteAt (tempFile).
type countedFile struct {
	tempFile
	c *fileCount
}

func (f *countedFile) Write(p []byte) (int, error) {
	n, err := f.tempFile.Write(p)
	f.c.bytes.Add(int64(n))
	return n, err
}

func (f *countedFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.tempFile.WriteAt(p, off)
	f.c.bytes.Add(int64(n))
	return n, err
}

// countFiles makes createTemp count into the fileCount it returns until t
// ends.
func countFiles(t *testing.T) *fileCount {
	c := new(fileCount)
	create := createTemp
	createTemp = func(dir, pattern string) (tempFile, error) {
		f, err := create(dir, pattern)
		if err != nil {
			return nil, err
		}
		c.files.Add(1)
		return &countedFile{tempFile: f, c: c}, nil
	}
	t.Cleanup(func() { createTemp = create })
	return c
}

// wrapOpen makes implementation name's stores go through wrap until t
// ends.
func wrapOpen(t *testing.T, name string, wrap func(Store) Store) {
	for i := range impls {
		if impls[i].Name != name {
			continue
		}
		open := impls[i].Open
		impls[i].Open = func(cfg Config) (Store, error) {
			s, err := open(cfg)
			if err != nil {
				return nil, err
			}
			return wrap(s), nil
		}
		t.Cleanup(func() { impls[i].Open = open })
		return
	}
	t.Fatalf("no implementation %q", name)
}

// spoolUploads wraps a spool store and records, as each upload is closed,
// the size of its buffer and whether it is on disk.
type spoolUploads struct {
	Store
	mu     sync.Mutex
	size   map[uint64]int64 // by buffer ID
	onDisk map[uint64]bool  // buffers on disk just before Close
}

func (s *spoolUploads) New() (Sink, error) {
	k, err := s.Store.New()
	if err != nil {
		return nil, err
	}
	return &spoolUpload{Sink: k, s: s}, nil
}

// spilled returns, for the uploads whose buffers rolled over (all of them,
// or the chunks an eviction took), the bytes they held, the least of those
// that went to disk (a chunk each, or all of a smaller one), and their
// number, once all are closed. It fails t if a buffer was on disk without
// a rollover event, or an event names no upload.
func (s *spoolUploads) spilled(t *testing.T) (bytes, least, buffers int64) {
	t.Helper()
	st := s.Store.(*spoolStore)
	st.mu.Lock()
	defer st.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.onDisk {
		if !st.spilled[id] {
			t.Errorf("spool buffer %d was on disk without a rollover event", id)
		}
	}
	for id := range st.spilled {
		size, ok := s.size[id]
		if !ok {
			t.Errorf("spool buffer %d rolled over, but no upload had it", id)
		}
		bytes += size
		least += min(size, spool.DefaultChunkSize)
		buffers++
	}
	return bytes, least, buffers
}

type spoolUpload struct {
	Sink
	s *spoolUploads
}

// Close records the buffer before closing it. Another upload's write may
// still roll it over until it is closed.
func (k *spoolUpload) Close() error {
	b := k.Sink.(*spoolSink).b
	id, size, onDisk := b.ID(), b.Size(), b.OnDisk()
	k.s.mu.Lock()
	k.s.size[id] = size
	if onDisk {
		k.s.onDisk[id] = true
	}
	k.s.mu.Unlock()
	return k.Sink.Close()
}

// corruptStore wraps a Store and damages what one Sink in every few reads
// back, to prove that the check catches it.
type corruptStore struct {
	Store
	mode string // "flip" or "short"
}

func (c *corruptStore) New() (Sink, error) {
	s, err := c.Store.New()
	return &corruptSink{Sink: s, mode: c.mode}, err
}

type corruptSink struct {
	Sink
	mode string
}

func (c *corruptSink) ReadBack(w io.Writer) (int64, error) {
	var b bytes.Buffer
	if _, err := c.Sink.ReadBack(&b); err != nil {
		return 0, err
	}
	p := b.Bytes()
	switch {
	case len(p) == 0:
	case c.mode == "flip":
		p[len(p)/2] ^= 0x01
	case c.mode == "short":
		p = p[:len(p)-1]
	}
	n, err := w.Write(p)
	return int64(n), err
}

func TestChecksumCatchesCorruption(t *testing.T) {
	cfg := tinyConfig()
	w := newWorkload(cfg.Seed, cfg.Total, cfg.MinSize, cfg.MaxSize)
	for _, mode := range []string{"flip", "short"} {
		store, err := openSpool(cfg)
		if err != nil {
			t.Fatal(err)
		}
		st := new(uploadStats)
		runUploadsOn(&corruptStore{Store: store, mode: mode}, w, cfg.Clients, cfg.Piece, st)
		store.Close()
		if got := st.checksumErrors.Load(); got != int64(len(w.Uploads)) {
			t.Errorf("%s: %d checksum errors, want %d (one per upload)", mode, got, len(w.Uploads))
		}
	}
}

func TestWorkload(t *testing.T) {
	const total, lo, hi = 1 << 30, 4 << 10, 32 << 20
	w := newWorkload(1, total, lo, hi)
	if again := newWorkload(1, total, lo, hi); len(again.Uploads) != len(w.Uploads) || again.Total != w.Total {
		t.Fatal("workload is not deterministic")
	}
	last := w.Uploads[len(w.Uploads)-1].Size
	if w.Total < total || w.Total-last >= total {
		t.Errorf("%d uploads total %d: not the fewest that reach %d", len(w.Uploads), w.Total, total)
	}
	seeds := make(map[uint64]bool)
	var sum int64
	for _, u := range w.Uploads {
		if u.Size < lo || u.Size > hi {
			t.Errorf("size %d out of [%d, %d]", u.Size, lo, hi)
		}
		if seeds[u.Seed] {
			t.Errorf("seed %x repeated", u.Seed)
		}
		seeds[u.Seed] = true
		sum += u.Size
	}
	if sum != w.Total {
		t.Errorf("sizes sum to %d, Total says %d", sum, w.Total)
	}
	if other := newWorkload(2, total, lo, hi); other.Total == w.Total {
		t.Error("seeds 1 and 2 give the same workload")
	}
}

// Generating an upload piece by piece gives the same bytes as all at once,
// and different seeds give different bytes.
func TestGen(t *testing.T) {
	whole := make([]byte, 100_003)
	g := newGen(42)
	g.fill(whole)
	var pieces []byte
	g = newGen(42)
	for off := 0; off < len(whole); off += 32 << 10 {
		p := make([]byte, min(32<<10, len(whole)-off))
		g.fill(p)
		pieces = append(pieces, p...)
	}
	if !bytes.Equal(whole, pieces) {
		t.Error("piecewise generation differs")
	}
	other := make([]byte, len(whole))
	g = newGen(43)
	g.fill(other)
	if bytes.Equal(whole, other) {
		t.Error("seeds 42 and 43 give the same bytes")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"67108864": 64 << 20, "64MiB": 64 << 20, "64 MiB": 64 << 20, "64mib": 64 << 20,
		"64M": 64 << 20, "64MB": 64e6, "1.5GiB": 3 << 29, "4KiB": 4096, "4k": 4096, "0": 0,
		"32 KiB": 32 << 10, "7B": 7,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "64 parsecs", "-1", "1e99GiB", "1.2.3", "1.5", "99999999999999999999"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
	for _, n := range []int64{0, 7, 4096, 64 << 20, 3 << 29, 1610612737} {
		if got, err := parseSize(formatSize(n)); err != nil || (n%1024 == 0 && got != n) {
			t.Errorf("parseSize(formatSize(%d)) = %d, %v", n, got, err)
		}
	}
}

func TestFlagsRoundTrip(t *testing.T) {
	cfg, err := parseFlags([]string{"-budget", "16MiB", "-clients", "3", "-total", "1GiB", "-seed", "9", "-impl", "spool, bytes",
		"-threshold", "100000", "-scale-buffers", "5,70", "-scale-budgets", "1MiB, 1.5MiB", "-scale-load", "70", "-scale-bytes", "3MiB",
		"-micro-size", "1MiB", "-micro-spill-size", "2MiB", "-micro-piece", "4KiB", "-micro-reps", "2", "-micro-time", "3ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Budget != 16<<20 || cfg.Clients != 3 || cfg.Total != 1<<30 || cfg.Seed != 9 || strings.Join(cfg.Impls, ",") != "spool,bytes" ||
		cfg.Threshold != 100000 || !reflect.DeepEqual(cfg.ScaleBuffers, []int{5, 70}) || !reflect.DeepEqual(cfg.ScaleBudgets, []int64{1 << 20, 3 << 19}) ||
		cfg.ScaleLoad != 70 || cfg.ScaleBytes != 3<<20 || cfg.MicroMemSize != 1<<20 || cfg.MicroSpillSize != 2<<20 || cfg.MicroPiece != 4096 ||
		cfg.MicroReps != 2 || cfg.MicroTime != 3*time.Millisecond {
		t.Fatalf("parsed %+v", cfg)
	}
	child, err := parseFlags(cfg.childArgs(Job{Impl: "spool"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if child.Child != "spool" {
		t.Errorf("child runs %q", child.Child)
	}
	child.Impls, cfg.Impls, child.Child = nil, nil, ""
	if !reflect.DeepEqual(child, cfg) {
		t.Errorf("child sees %+v, parent has %+v", child, cfg)
	}
	// The cache scenario's flags reach the child too.
	cfg, err = parseFlags([]string{"-scenario", "cache", "-cache-budget", "32MiB", "-blobs", "7", "-reads", "99", "-zipf", "1.2, 0.7",
		"-blob-min-size", "2KiB", "-blob-max-size", "1MiB", "-scan-blobs", "3", "-scan-size", "1MiB", "-scan-impl", "lfu", "-impl", "lfu,lru"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CacheBudget != 32<<20 || cfg.Blobs != 7 || cfg.Reads != 99 || !reflect.DeepEqual(cfg.Zipf, []float64{1.2, 0.7}) || cfg.ScanBlobs != 3 {
		t.Fatalf("parsed %+v", cfg)
	}
	child, err = parseFlags(cfg.childArgs(Job{Impl: "lru", Zipf: 0.7, Scan: true}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if child.Child != "lru" || child.ChildZipf != 0.7 || !child.ChildScan {
		t.Errorf("child runs %q at %g, scan %v", child.Child, child.ChildZipf, child.ChildScan)
	}
	child.Impls, cfg.Impls, child.Child, child.ChildZipf, child.ChildScan = nil, nil, "", 0, false
	if !reflect.DeepEqual(child, cfg) {
		t.Errorf("child sees %+v, parent has %+v", child, cfg)
	}
	// So do those of blobs and slow.
	cfg, err = parseFlags([]string{"-scenario", "slow", "-blobs-count", "77", "-blobs-min-size", "1KiB", "-blobs-max-size", "2KiB", "-blobs-budget", "3MiB",
		"-blobs-reads", "88", "-blobs-zipf", "0.9", "-slow-uploads", "33", "-slow-http-uploads", "22", "-slow-min-size", "5KiB", "-slow-max-size", "6KiB",
		"-slow-read", "512", "-slow-pause", "7ms", "-slow-budget", "1MiB", "-small-read", "8KiB", "-blobs-fd-limit", "99",
		"-churn-buffers", "50", "-churn-close", "40", "-churn-new", "30", "-churn-size", "3KiB"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BlobsFDLimit != 99 || cfg.ChurnBuffers != 50 || cfg.ChurnClose != 40 || cfg.ChurnNew != 30 || cfg.ChurnSize != 3<<10 {
		t.Fatalf("parsed %+v", cfg)
	}
	if cfg.BlobsCount != 77 || cfg.BlobsMinSize != 1<<10 || cfg.BlobsMaxSize != 2<<10 || cfg.BlobsBudget != 3<<20 || cfg.BlobsReads != 88 || cfg.BlobsZipf != 0.9 ||
		cfg.SlowUploads != 33 || cfg.SlowHTTPUploads != 22 || cfg.SlowMinSize != 5<<10 || cfg.SlowMaxSize != 6<<10 || cfg.SlowRead != 512 ||
		cfg.SlowPause != 7*time.Millisecond || cfg.SlowBudget != 1<<20 || cfg.SmallRead != 8<<10 {
		t.Fatalf("parsed %+v", cfg)
	}
	child, err = parseFlags(append(cfg.childArgs(Job{Impl: "http"}), "-slow-client", "127.0.0.1:9", "-slow-client-uploads", "5"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if child.Child != "http" || child.SlowClient != "127.0.0.1:9" || child.SlowClientUploads != 5 {
		t.Errorf("child runs %q against %q", child.Child, child.SlowClient)
	}
	child.Impls, cfg.Impls, child.Child, child.SlowClient, child.SlowClientUploads = nil, nil, "", "", 0
	if !reflect.DeepEqual(child, cfg) {
		t.Errorf("child sees %+v, parent has %+v", child, cfg)
	}
	// And those of shrink.
	cfg, err = parseFlags([]string{"-scenario", "shrink", "-shrink-budget", "32MiB", "-shrink-to", "8MiB", "-shrink-at", "0.25"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ShrinkBudget != 32<<20 || cfg.ShrinkTo != 8<<20 || cfg.ShrinkAt != 0.25 {
		t.Fatalf("parsed %+v", cfg)
	}
	child, err = parseFlags(cfg.childArgs(Job{Impl: "spool"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	child.Impls, cfg.Impls, child.Child = nil, nil, ""
	if !reflect.DeepEqual(child, cfg) {
		t.Errorf("child sees %+v, parent has %+v", child, cfg)
	}
	// And those of diskwait.
	cfg, err = parseFlags([]string{"-scenario", "diskwait", "-diskwait-budget", "96MiB", "-diskwait-deadline", "90s", "-diskwait-retries", "7",
		"-diskwait-backoff", "3ms", "-impl", "nowait"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DiskWaitBudget != 96<<20 || cfg.DiskWaitDeadline != 90*time.Second || cfg.DiskWaitRetries != 7 || cfg.DiskWaitBackoff != 3*time.Millisecond ||
		!reflect.DeepEqual(cfg.Impls, []string{"nowait"}) {
		t.Fatalf("parsed %+v", cfg)
	}
	child, err = parseFlags(cfg.childArgs(Job{Impl: "nowait"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if child.Child != "nowait" || child.Scenario != "diskwait" {
		t.Errorf("child runs %q of %q", child.Child, child.Scenario)
	}
	child.Impls, cfg.Impls, child.Child = nil, nil, ""
	if !reflect.DeepEqual(child, cfg) {
		t.Errorf("child sees %+v, parent has %+v", child, cfg)
	}
	for _, bad := range [][]string{{"-diskwait-budget", "0"}, {"-diskwait-budget", "64KiB"}, {"-diskwait-deadline", "0s"}, {"-diskwait-deadline", "-1m"},
		{"-diskwait-retries", "-1"}, {"-diskwait-backoff", "-1ms"}, {"-scenario", "diskwait", "-impl", "spool"}, {"-child", "wait", "-scenario", "uploads"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
	for _, bad := range [][]string{{"-shrink-budget", "1KiB"}, {"-shrink-to", "1KiB"}, {"-shrink-at", "0"}, {"-shrink-at", "1.5"}, {"-shrink-at", "NaN"},
		{"-scenario", "shrink", "-impl", "bytes"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
	for _, bad := range [][]string{{"-blobs-count", "0"}, {"-blobs-min-size", "0"}, {"-blobs-budget", "1KiB"}, {"-blobs-reads", "0"}, {"-blobs-zipf", "-1"},
		{"-slow-uploads", "0"}, {"-slow-http-uploads", "-1"}, {"-slow-min-size", "2KiB", "-slow-max-size", "1KiB"}, {"-slow-read", "0"}, {"-slow-pause", "-1s"},
		{"-slow-budget", "1KiB"}, {"-small-read", "-1"}, {"-scenario", "blobs", "-impl", "lfu"}, {"-scenario", "slow", "-impl", "spool"},
		{"-blobs-fd-limit", "-1"}, {"-blobs-fd-limit", "10"}, {"-churn-buffers", "0"}, {"-churn-close", "-1"}, {"-churn-close", "10001"},
		{"-churn-new", "-1"}, {"-churn-size", "0"}, {"-scenario", "churn", "-impl", "lfu"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
	for _, bad := range [][]string{{"-impl", "nope"}, {"-scenario", "nope"}, {"-budget", "lots"}, {"-clients", "0"}, {"extra"},
		{"-scenario", "cache", "-impl", "spool"}, {"-scenario", "uploads", "-impl", "lfu"}, {"-zipf", "x"}, {"-zipf", ""}, {"-zipf", "-1"},
		{"-reads", "0"}, {"-scan-impl", "nope"}, {"-cache-budget", "1KiB"}, {"-child", "lfu", "-scenario", "cache"},
		{"-threshold", "0"}, {"-scale-buffers", "0"}, {"-scale-buffers", ""}, {"-scale-budgets", "1KiB"}, {"-micro-reps", "0"}, {"-micro-time", "0s"},
		{"-scenario", "micro", "-impl", "spool"}, {"-child", "spool", "-scenario", "scale"}, {"-plot", "x.jpg"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
}

// The child side of the protocol prints one JSON Result with its
// measurements, in process.
func TestChildMain(t *testing.T) {
	cfg := tinyConfig()
	cfg.TempDir = t.TempDir()
	cfg.Child = "spool"
	var out, errs bytes.Buffer
	if code := childMain(cfg, &out, &errs); code != 0 {
		t.Fatalf("exit %d, stderr %q, stdout %q", code, errs.String(), out.String())
	}
	var res Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if res.Impl != "spool" || res.Uploads == 0 || res.Uploads != res.WantUploads || res.WallSeconds <= 0 || res.Store.Budget != cfg.Budget {
		t.Errorf("result %+v", res)
	}
	if readProcIO() != nil && res.PeakHWM <= 0 {
		t.Errorf("no peak RSS on a system with /proc: %+v", res)
	}
}

func TestReportTable(t *testing.T) {
	cfg := tinyConfig()
	run := Run{Scenario: "uploads", Config: cfg, Results: []Result{
		{Impl: "bytes", Label: "bytes.Buffer", Bytes: 1e9, WantBytes: 1e9, WallSeconds: 2, PeakHWM: 1, PeakRSSAboveBaseline: 1 << 30},
		{Impl: "spool", Label: "spool", Bytes: 1e9, WantBytes: 1e9, WallSeconds: 1, PeakHWM: 1, PeakRSSAboveBaseline: 80 << 20,
			Store: StoreStats{Budget: cfg.Budget, Spills: 1234, SpilledBytes: 5 << 20, DiskBytes: 9 << 20, Files: 1234}, SyscallWriteBytes: 9 << 20},
	}}
	var b bytes.Buffer
	printReport(&b, run)
	var rows []string
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, "|") {
			rows = append(rows, line)
		}
	}
	if len(rows) != 4 {
		t.Fatalf("want header, separator and 2 rows:\n%s", b.String())
	}
	for _, r := range rows {
		if utf8.RuneCountInString(r) != utf8.RuneCountInString(rows[0]) {
			t.Errorf("ragged table:\n%s", strings.Join(rows, "\n"))
			break
		}
	}
	if !strings.Contains(rows[3], "2.00x") || !strings.Contains(rows[3], "1,234") || strings.Contains(b.String(), "NOTE") {
		t.Errorf("unexpected report:\n%s", b.String())
	}
	// The targets: no per-buffer spool ran; spool's RSS is far over
	// the tiny budget.
	for _, want := range []string{"- n/a  spool's throughput >= 1.0x the best per-buffer spool's: not run", "- MISS spool's peak RSS above baseline <= 1.25x budget: 320.00x"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in the report:\n%s", want, b.String())
		}
	}
	// With a per-buffer spool at 0.8 GB/s and a budget that holds the
	// RSS, both pass, and the ratios are to the best peer (multipart).
	run.Config.Budget = 80 << 20
	run.Results = append(run.Results, Result{Impl: "multipart", Label: "multipart-style", Bytes: 8e8, WantBytes: 8e8, WallSeconds: 1, PeakHWM: 1, PeakRSSAboveBaseline: 200 << 20})
	b.Reset()
	printReport(&b, run)
	for _, want := range []string{"- PASS spool's throughput >= 1.0x the best per-buffer spool's: 1.25x (1.00 GB/s vs multipart-style 0.80 GB/s)",
		"- PASS spool's peak RSS above baseline <= 1.25x budget: 1.00x", "(multipart-style)", "|       1.25x |"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in the report:\n%s", want, b.String())
		}
	}
}

// A child's write(2) bytes match its store's accounting if the difference
// is the runtime's 8-byte eventfd writes, at most one per call; the report
// notes a result that does not match.
func TestSyscallWritesMatch(t *testing.T) {
	const disk = 1 << 20
	for _, c := range []struct {
		wchar, syscw int64
		want         bool
	}{
		{disk, 0, true}, {disk, 90, true}, {disk + 8, 1, true}, {disk + 4112, 600, true},
		{disk + 4112, 513, false}, {disk + 8, 0, false}, {disk + 4, 90, false}, {disk + 1, 90, false}, {disk - 8, 90, false},
	} {
		if got := syscallWritesMatch(c.wchar, c.syscw, disk); got != c.want {
			t.Errorf("syscallWritesMatch(%d, %d, %d) = %v, want %v", c.wchar, c.syscw, int64(disk), got, c.want)
		}
	}
	run := Run{Scenario: "uploads", Config: tinyConfig(), Results: []Result{
		{Impl: "tempfile", Label: "os.CreateTemp", Bytes: 1e9, WantBytes: 1e9, WallSeconds: 1, PeakHWM: 1,
			Store: StoreStats{DiskBytes: disk, DirectBytes: disk}, SyscallWriteBytes: disk + 4, SyscallWrites: 90},
	}}
	var b bytes.Buffer
	printReport(&b, run)
	if want := "NOTE: os.CreateTemp passed 1,048,580 bytes to write(2) in 90 calls"; !strings.Contains(b.String(), want) {
		t.Errorf("no %q in the report:\n%s", want, b.String())
	}
}

// The parent runs every implementation in a child process (this test
// binary, see TestMain), collects the results and prints the table; a
// checksum error in a child makes it fail.
func TestParentMain(t *testing.T) {
	cfg := tinyConfig()
	cfg.TempDir = t.TempDir()
	cfg.Plot = filepath.Join(t.TempDir(), "memory.png")
	var out, errs bytes.Buffer
	if code := parentMain(cfg, &out, &errs); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errs.String())
	}
	for _, im := range impls {
		if !strings.Contains(out.String(), "| "+im.Label+" ") {
			t.Errorf("no row for %s:\n%s", im.Label, out.String())
		}
	}
	if !strings.Contains(out.String(), "Targets:") || errs.Len() != 0 {
		t.Errorf("no targets, or output on stderr (not a terminal):\n%s\nstderr:\n%s", out.String(), errs.String())
	}
	// -plot drew the RSS the children sampled.
	if readProcIO() != nil {
		png := plotPath(cfg.Plot, "uploads")
		checkImage(t, png)
		if !strings.Contains(out.String(), "Plot: "+png) {
			t.Errorf("the report does not name the plot %s:\n%s", png, out.String())
		}
	}
	cfg.Plot = ""
	if strings.Contains(out.String(), "NOTE") || strings.Contains(out.String(), "n/a") && readProcIO() != nil {
		t.Errorf("unexpected report:\n%s", out.String())
	}

	t.Setenv("SPOOLBENCH_TEST_CORRUPT", "1")
	cfg.Impls = []string{"spool"}
	cfg.JSON = true
	out.Reset()
	errs.Reset()
	if code := parentMain(cfg, &out, &errs); code == 0 {
		t.Fatalf("exit 0 with corrupt read-backs\nstdout:\n%s\nstderr:\n%s", out.String(), errs.String())
	}
	var run Run
	if err := json.Unmarshal(out.Bytes(), &run); err != nil {
		t.Fatal(err)
	}
	if len(run.Results) != 1 || run.Results[0].ChecksumErrors == 0 || len(run.Failures) != 1 || run.Results[0].CPUSeconds() <= 0 {
		t.Errorf("JSON run %+v", run)
	}
}

// tinyCacheConfig is a cache workload that takes well under a second per
// run: 50 blobs from 1 KiB to 1 MiB (about 7 MiB), a 2 MiB budget, 2,000
// reads, and a scan of 8 blobs of 256 KiB.
func tinyCacheConfig(t *testing.T) Config {
	cfg := defaultConfig()
	cfg.Scenario = "cache"
	cfg.Blobs = 50
	cfg.BlobMaxSize = 1 << 20
	cfg.CacheBudget = 2 << 20
	cfg.Reads = 2000
	cfg.ScanBlobs = 8
	cfg.ScanSize = 256 << 10
	cfg.TempDir = t.TempDir()
	return cfg
}

// Every policy runs the cache scenario in process without a wrong read,
// with whole-blob reads and with small reads, and none beats the greedy
// ceiling by more than 2 points (it is an approximation, so it may be
// beaten slightly), nor the best fixed set by more than the luck of the
// draw allows. The scan test runs too.
func TestCacheEveryPolicy(t *testing.T) {
	cfg := tinyCacheConfig(t)
	w := newCacheWorkload(cfg)
	charges, capacity, err := measureCharges(cfg, w.Sizes)
	if err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, res Result, err error) *CacheResult {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if p := res.problem(); p != "" {
			t.Fatal(p)
		}
		c := res.Cache
		if res.ChecksumErrors != 0 || c.Overall.Reads != int64(cfg.Reads) || c.Verified != int64((cfg.Reads+verifyEvery-1)/verifyEvery) {
			t.Fatalf("%d checksum errors, %d reads, %d verified", res.ChecksumErrors, c.Overall.Reads, c.Verified)
		}
		if c.Overall.Bytes == 0 || c.Overall.Hits > c.Overall.Reads || c.Overall.HitBytes > c.Overall.Bytes {
			t.Fatalf("overall %+v", c.Overall)
		}
		return c
	}
	// Every blob fits; the budget is far below what all of them take.
	var sum int64
	for b, c := range charges {
		if c < w.Sizes[b] || c > max(256, w.Sizes[b]*5/4+1) {
			t.Errorf("blob of %d bytes charged %d", w.Sizes[b], c)
		}
		sum += c
	}
	if capacity != cfg.CacheBudget || sum < 2*capacity {
		t.Fatalf("capacity %d, blobs take %d", capacity, sum)
	}
	type kind struct {
		s     float64
		small bool
	}
	kinds := []kind{{cfg.Zipf[0], true}}
	for _, s := range cfg.Zipf {
		kinds = append(kinds, kind{s, false})
	}
	for _, k := range kinds {
		s := k.s
		reads := cacheReads(cfg, w, s)
		lens := readLengths(cfg, w, reads, k.small)
		ceil := greedyCeiling(charges, capacity, reads, lens)
		fs := staticOracle(w, charges, capacity, s, reads, lens)
		t.Logf("s=%g small=%v: greedy ceiling %.1f%%, best fixed set %.1f%% (expected %.1f%%, at most %.1f%%, exact %v)",
			s, k.small, 100*ceil.Overall.Ratio(), 100*fs.overall.Ratio(), 100*fs.expected, 100*fs.bound, fs.exact)
		if !fs.exact || ceil.Overall.Reads != int64(cfg.Reads) || fs.expected > fs.bound || fs.bound-fs.expected > 0.05 {
			t.Errorf("exact %v, expected %.4f, bound %.4f, %d reads in the ceiling", fs.exact, fs.expected, fs.bound, ceil.Overall.Reads)
		}
		// The fixed set's hits are random draws around its expectation:
		// 4 standard deviations of the mean of the reads.
		luck := 4 * math.Sqrt(fs.expected*(1-fs.expected)/float64(cfg.Reads))
		for _, v := range cacheVariants {
			name := fmt.Sprintf("%s/s=%g", v.Name, s)
			if k.small {
				if v.Name != "lfu" && v.Name != "lru" {
					continue // the other policies read the same way
				}
				name += "/small"
			}
			t.Run(name, func(t *testing.T) {
				res, err := runCache(cfg, Job{Impl: v.Name, Zipf: s, Small: k.small})
				c := check(t, res, err)
				if k.small {
					if c.Overall.Bytes > int64(cfg.Reads)*cfg.SmallRead || c.Overall.Bytes != ceil.Overall.Bytes || c.ReadSize != cfg.SmallRead {
						t.Errorf("small reads of %d bytes read %d bytes; the ceiling counts %d", cfg.SmallRead, c.Overall.Bytes, ceil.Overall.Bytes)
					}
				} else if c.Overall.Bytes != ceil.Overall.Bytes {
					t.Errorf("read %d bytes; the ceiling counts %d", c.Overall.Bytes, ceil.Overall.Bytes)
				}
				// Without a scan the bench's per-read deltas add up to
				// the Stats deltas of the whole read phase.
				if c.StatsReads != c.Overall.Reads || c.StatsHitRatio != c.Overall.Ratio() {
					t.Errorf("Stats: %d reads, %.4f from memory; bench: %d, %.4f", c.StatsReads, c.StatsHitRatio, c.Overall.Reads, c.Overall.Ratio())
				}
				got, max := c.Overall.Ratio(), ceil.Overall.Ratio()
				t.Logf("%.1f%% of reads from memory, %d promotions", 100*got, c.End.Promotions)
				if got > max+0.02 {
					t.Errorf("%s beats the greedy ceiling by %.1f points: %.1f%% > %.1f%%", v.Label, 100*(got-max), 100*got, 100*max)
				}
				if got > fs.bound+luck {
					t.Errorf("%s beats every fixed set by %.1f points: %.1f%% > %.1f%% + %.1f", v.Label, 100*(got-fs.bound), 100*got, 100*fs.bound, 100*luck)
				}
				if v.policy != spool.LeastFrequentlyUsed || v.noPromotion {
					if c.End.Promotions != 0 {
						t.Errorf("%d promotions without promotion", c.End.Promotions)
					}
				}
			})
		}
	}
	for _, name := range []string{"lfu", "lru"} {
		t.Run(name+"/scan", func(t *testing.T) {
			res, err := runCache(cfg, Job{Impl: name, Zipf: cfg.Zipf[0], Scan: true})
			c := check(t, res, err)
			if c.ScanBefore.Reads == 0 || c.ScanDuring.Reads == 0 || c.ScanAfter.Reads == 0 {
				t.Errorf("scan windows %+v %+v %+v", c.ScanBefore, c.ScanDuring, c.ScanAfter)
			}
			// The scan's read-backs count in Stats on top of the Zipf reads.
			if c.StatsReads != c.Overall.Reads+int64(cfg.ScanBlobs) {
				t.Errorf("Stats counts %d reads, want %d Zipf reads + %d scan read-backs", c.StatsReads, c.Overall.Reads, cfg.ScanBlobs)
			}
		})
	}
}

// The sampler draws rank 1 about 2^s times as often as rank 2, for s on
// both sides of 1, and each rank with its probability.
func TestZipf(t *testing.T) {
	const n, draws = 100, 1_000_000
	for _, s := range []float64{0, 0.8, 1.1, 1.5} {
		z := newZipf(n, s)
		rng := rand.New(rand.NewPCG(7, 7))
		count := make([]int, n)
		for range draws {
			count[z.rank(rng.Float64())]++
		}
		got, want := float64(count[0])/float64(count[1]), math.Pow(2, s)
		if math.Abs(got/want-1) > 0.03 {
			t.Errorf("s=%g: rank 1 drawn %d times, rank 2 %d: ratio %.3f, want %.3f", s, count[0], count[1], got, want)
		}
		for k := range 10 {
			p := z.prob(k)
			if sd := math.Sqrt(p * (1 - p) / draws); math.Abs(float64(count[k])/draws-p) > 5*sd {
				t.Errorf("s=%g: rank %d drawn with frequency %.5f, probability %.5f", s, k+1, float64(count[k])/draws, p)
			}
		}
	}
	z := newZipf(3, 1)
	if z.rank(0) != 0 || z.rank(math.Nextafter(1, 0)) != 2 {
		t.Errorf("rank(0) = %d, rank(1-) = %d", z.rank(0), z.rank(math.Nextafter(1, 0)))
	}
}

// optimalHits returns the most read hits any cache of capacity bytes can
// get over the write phase and reads that greedyCeiling simulates, by
// trying every choice: on each miss, decline, or admit evicting any set of
// blobs. Only for a handful of blobs.
func optimalHits(charges []int64, capacity int64, reads []int32) int64 {
	nb := len(charges)
	used := func(set int) int64 {
		var c int64
		for b := range nb {
			if set&(1<<b) != 0 {
				c += charges[b]
			}
		}
		return c
	}
	best := map[int]int64{0: 0}
	for t := range nb + len(reads) {
		x, read := t, false
		if t >= nb {
			x, read = int(reads[t-nb]), true
		}
		next := make(map[int]int64)
		keep := func(set int, v int64) {
			if old, ok := next[set]; !ok || v > old {
				next[set] = v
			}
		}
		for set, v := range best {
			if set&(1<<x) != 0 {
				if read {
					v++
				}
				keep(set, v)
				continue
			}
			keep(set, v)
			// Admit x, keeping any subset of set that leaves room.
			for sub := set; ; sub = (sub - 1) & set {
				if used(sub)+charges[x] <= capacity {
					keep(sub|1<<x, v)
				}
				if sub == 0 {
					break
				}
			}
		}
		best = next
	}
	var most int64
	for _, v := range best {
		most = max(most, v)
	}
	return most
}

// With blobs of one chunk each, greedyCeiling is Belady's rule with
// bypass, which is optimal; with mixed sizes it is an approximation and
// never beats the optimum.
func TestGreedyCeiling(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	const unitCharge = 4096
	for trial := range 300 {
		nb := 2 + rng.IntN(6)
		unit := trial%2 == 0
		charges := make([]int64, nb)
		for b := range charges {
			charges[b] = unitCharge
			if !unit {
				charges[b] = 256 + rng.Int64N(3*unitCharge)
			}
		}
		capacity := (1 + rng.Int64N(4)) * unitCharge
		reads := make([]int32, 1+rng.IntN(30))
		lens := make([]int64, len(reads))
		for k := range reads {
			reads[k] = int32(rng.IntN(nb))
			lens[k] = 1 + rng.Int64N(100)
		}
		got := greedyCeiling(charges, capacity, reads, lens)
		opt := optimalHits(charges, capacity, reads)
		if got.Overall.Reads != int64(len(reads)) || got.Overall.Hits > opt || unit && got.Overall.Hits != opt {
			t.Fatalf("charges %v, capacity %d, reads %v: greedy %d hits, optimum %d", charges, capacity, reads, got.Overall.Hits, opt)
		}
	}
	// Everything fits: every read hits, and moves its bytes. A blob that
	// never fits (-1) is declined.
	charges := []int64{256, cachePiece, cachePiece + 320, -1}
	lens := []int64{1, 2, 3, 4, 5, 6, 7}
	c := greedyCeiling(charges, 4*cachePiece, []int32{0, 1, 2, 2, 1, 0, 3}, lens)
	if c.Overall.Hits != 6 || c.Overall.HitBytes != 21 || c.Overall.Bytes != 28 || c.Evicted != 0 {
		t.Errorf("all fit: %+v", c)
	}
}

// The fixed set is the exact knapsack where the table is small, filled
// greedily otherwise, and the fractional knapsack bounds both.
func TestStaticOracle(t *testing.T) {
	cfg := tinyCacheConfig(t)
	cfg.Blobs = 12
	w := newCacheWorkload(cfg)
	rng := rand.New(rand.NewPCG(5, 5))
	charges := make([]int64, len(w.Sizes))
	for b := range charges {
		charges[b] = 64 * (1 + rng.Int64N(40))
	}
	charges[3] = -1 // never fits
	reads := cacheReads(cfg, w, 1.1)
	lens := readLengths(cfg, w, reads, false)
	capacity := int64(64 * 60)
	fs := staticOracle(w, charges, capacity, 1.1, reads, lens)
	// Brute force: the best subset.
	z := newZipf(len(w.Sizes), 1.1)
	best := 0.0
	for set := range 1 << len(w.Sizes) {
		var used int64
		p := 0.0
		ok := true
		for r, b := range w.ByRank {
			if set&(1<<b) != 0 {
				if charges[b] < 0 {
					ok = false
				}
				used += charges[b]
				p += z.prob(r)
			}
		}
		if ok && used <= capacity {
			best = max(best, p)
		}
	}
	if !fs.exact || math.Abs(fs.expected-best) > 1e-9 || fs.bound < best-1e-9 || fs.overall.Reads != int64(len(reads)) {
		t.Errorf("exact %v, expected %.6f, bound %.6f; the best subset expects %.6f", fs.exact, fs.expected, fs.bound, best)
	}
}

// The parent runs the cache scenario in child processes and prints its
// tables, the ceiling and the targets; -scenario all with -json prints one
// JSON run per scenario.
func TestParentMainCache(t *testing.T) {
	cfg := tinyCacheConfig(t)
	// What the policies serve is checked in process (TestCacheEveryPolicy);
	// here only that the runs are reported, for which fewer reads will do
	// (10 in each of the cacheBuckets).
	cfg.Reads = 600
	cfg.Impls = []string{"lru", "lfu"}
	cfg.ScanImpls = []string{"lfu"}
	var out, errs bytes.Buffer
	if code := parentMain(cfg, &out, &errs); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errs.String())
	}
	for _, want := range []string{"| greedy ceiling (offline, approx.) ", "| best fixed set (offline) ", "| LeastRecentlyUsed ", "| LeastFrequentlyUsed ",
		"Zipf s = 1.1, whole-blob reads", "Zipf s = 0.8, whole-blob reads", "Zipf s = 1.1, small reads (4 KiB at a random page)", "Scan test", "APPROXIMATION",
		"as spool charges them in memory, measured", "Targets:", "LeastFrequentlyUsed serves >= 95% of reads from memory at s = 1.1, whole-blob reads: ",
		"LeastFrequentlyUsed serves >= 95% of reads from memory at s = 1.1, small reads of 4 KiB: ", "at s = 0.8", "< 5 points"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in the report:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "NOTE") || strings.Contains(out.String(), "n/a") {
		t.Errorf("unexpected report:\n%s", out.String())
	}

	up := tinyConfig()
	cfg.Scenario = allScenarios
	cfg.Impls = []string{"spool", "lfu"}
	cfg.Clients, cfg.Total, cfg.MinSize, cfg.MaxSize, cfg.Budget = up.Clients, up.Total, up.MinSize, up.MaxSize, up.Budget
	cfg.ScaleBytes, cfg.ScaleBuffers, cfg.ScaleBudgets = up.ScaleBytes, []int{3}, nil
	cfg.BlobsCount, cfg.BlobsBudget, cfg.BlobsReads = up.BlobsCount, up.BlobsBudget, up.BlobsReads
	tinyChurn(&cfg)
	cfg.SmallRead = 0 // no small-read runs this time
	cfg.JSON = true
	out.Reset()
	errs.Reset()
	if code := parentMain(cfg, &out, &errs); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errs.String())
	}
	dec := json.NewDecoder(&out)
	var runs []Run
	for {
		var run Run
		if err := dec.Decode(&run); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, run)
	}
	// micro and slow have neither spool nor lfu: they are skipped.
	if len(runs) != 6 || runs[0].Scenario != "uploads" || runs[1].Scenario != "cache" || runs[2].Scenario != "scale" || runs[3].Scenario != "blobs" ||
		runs[4].Scenario != "shrink" || len(runs[4].Results) != 1 || runs[4].Results[0].Shrink == nil ||
		runs[5].Scenario != "churn" || len(runs[5].Results) != 1 || runs[5].Results[0].Churn == nil {
		t.Fatalf("%d runs: %+v", len(runs), runs)
	}
	for _, sc := range []string{"micro", "slow"} {
		if !strings.Contains(errs.String(), sc+": -impl selects none of its implementations") {
			t.Errorf("stderr %q", errs.String())
		}
	}
	if len(runs[0].Results) != 1 || runs[0].Results[0].Impl != "spool" {
		t.Errorf("uploads results %+v", runs[0].Results)
	}
	cache := runs[1]
	if cache.Cache == nil || len(cache.Cache.Ceilings) != 2 || len(cache.Results) != 3 || cache.Cache.Capacity != cfg.CacheBudget {
		t.Fatalf("cache run %+v", cache)
	}
	for _, r := range cache.Results {
		if r.Impl != "lfu" || r.Cache == nil || r.Cache.Overall.Reads != int64(cfg.Reads) || r.PeakHWM <= 0 && readProcIO() != nil {
			t.Errorf("cache result %+v", r)
		}
	}
}

// checkImage fails the test unless path is a PNG or an SVG file, by its
// name, with the header of one.
func checkImage(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	switch filepath.Ext(path) {
	case ".png":
		if !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) || len(data) < 1000 {
			t.Errorf("%s: not a PNG (%d bytes)", path, len(data))
		}
	case ".svg":
		if i := bytes.Index(data, []byte("<svg")); i < 0 || i > 200 || !bytes.Contains(data, []byte("</svg>")) {
			t.Errorf("%s: not an SVG (%d bytes): %.100q", path, len(data), data)
		}
	default:
		t.Errorf("%s: unexpected image type", path)
	}
}

// The checksummed file of the spilled baseline reads back what was
// written, and a flipped bit is an error, not wrong bytes.
func TestCRCFile(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "crc-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := &crcFile{f: f}
	p, q := payload(4096), make([]byte, 4096)
	if err := writeReadBack(c, p, q, 3*4096); err != nil {
		t.Fatalf("clean round trip: %v", err)
	}
	if _, err := f.WriteAt([]byte{p[100] ^ 1}, 4096+100); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	var errs int
	for range 3 {
		if _, err := c.Read(q); err != nil {
			errs++
		}
	}
	if errs != 1 {
		t.Errorf("%d of 3 pieces failed their check after one flipped bit, want 1", errs)
	}
}

// Every micro operation runs in process, with every case timed in every
// repetition.
func TestMicro(t *testing.T) {
	cfg := tinyConfig()
	cfg.TempDir = t.TempDir()
	want := map[string][]string{"memory": {"spool", "spool-new", "bytes", "bytes-mutex", "copy"}, "spilled": {"spool", "file", "file-crc"}, "new": {"spool", "tempfile"}}
	for _, v := range microVariants {
		t.Run(v.Name, func(t *testing.T) {
			res, err := runMicro(cfg, Job{Impl: v.Name, Label: v.Label})
			if err != nil {
				t.Fatal(err)
			}
			if p := res.problem(); p != "" {
				t.Fatal(p)
			}
			m := res.Micro
			var names []string
			for _, c := range m.Cases {
				names = append(names, c.Name)
				if len(c.NsPerOp) != cfg.MicroReps || c.OpsPerRep < 1 || c.Median <= 0 || c.AllocsPerOp < 0 {
					t.Errorf("case %+v", c)
				}
			}
			if !reflect.DeepEqual(names, want[v.Name]) || m.Cases[0].Role != roleSpool {
				t.Errorf("cases %v, want %v with spool first", names, want[v.Name])
			}
			if v.Name != "new" && m.Bytes == 0 {
				t.Errorf("%s moves no bytes", v.Name)
			}
		})
	}
	if got := speed(&MicroCase{Median: 2}, &MicroCase{Median: 3}); got != 1.5 {
		t.Errorf("speed = %g, want the ratio of the medians, 1.5", got)
	}
	if got := median([]float64{5, 1, 3, 2}); got != 2.5 {
		t.Errorf("median = %g", got)
	}
	for _, c := range []struct {
		r, limit float64
		want     string
	}{{0.998, 1, "0.998x"}, {1.003, 1, "1.003x"}, {1, 1, "1.00x"}, {0.97, 1, "0.97x"}, {1.2549, 1.25, "1.255x"}, {1.26, 1.25, "1.26x"}} {
		if got := targetRatio(c.r, c.limit); got != c.want {
			t.Errorf("targetRatio(%g, %g) = %q, want %q", c.r, c.limit, got, c.want)
		}
	}
}

// Every scale point runs in process: spool spills past its budget, the
// per-buffer spool past its threshold, and nothing reads back wrong.
func TestScale(t *testing.T) {
	cfg := tinyConfig()
	cfg.TempDir = t.TempDir()
	for _, impl := range scaleVariants {
		for _, n := range cfg.ScaleBuffers {
			t.Run(fmt.Sprintf("%s/%d", impl, n), func(t *testing.T) {
				res, err := runScale(cfg, Job{Impl: impl, Buffers: n, Budget: cfg.Budget})
				if err != nil {
					t.Fatal(err)
				}
				if p := res.problem(); p != "" {
					t.Fatal(p)
				}
				size := cfg.ScaleBytes / int64(n)
				sr := res.Scale
				if res.Uploads != n || res.Bytes != int64(n)*size || sr.Buffers != n || sr.BufferSize != size || sr.Workers != min(n, scaleWorkers) {
					t.Errorf("result %+v, scale %+v", res, sr)
				}
				switch {
				case impl == spoolImpl && res.Store.Spills == 0:
					t.Errorf("spool held %d bytes under a %d-byte budget without spilling", cfg.ScaleBytes, cfg.Budget)
				case impl == "multipart" && (size > cfg.Threshold) != (res.Store.Files == int64(n)):
					t.Errorf("multipart with %d-byte buffers made %d files", size, res.Store.Files)
				}
			})
		}
	}
	if _, err := runScale(cfg, Job{Impl: "bytes", Buffers: 1, Budget: 1}); err == nil {
		t.Error("scale ran bytes.Buffer")
	}
}

func TestScaleJobs(t *testing.T) {
	cfg := tinyConfig()
	jobs := scaleJobs(cfg, []string{"spool", "multipart"})
	if len(jobs) != 2*len(cfg.ScaleBuffers)+len(cfg.ScaleBudgets) {
		t.Errorf("%d jobs: %+v", len(jobs), jobs)
	}
	// The budget sweep does not run a point of the concurrency sweep again.
	cfg.ScaleBudgets = []int64{cfg.Budget, 1 << 20}
	jobs = scaleJobs(cfg, []string{"spool"})
	if len(jobs) != len(cfg.ScaleBuffers)+1 || jobs[len(jobs)-1].Budget != 1<<20 || jobs[len(jobs)-1].Buffers != cfg.ScaleLoad {
		t.Errorf("%d jobs: %+v", len(jobs), jobs)
	}
	if got := jobFile("scale", jobs[0]); got != "scale-spool-3-0MiB" {
		t.Errorf("jobFile = %q", got)
	}
}

// fakeRuns returns an uploads run and a scale run with made-up results.
func fakeRuns() (uploads, scale Run) {
	cfg := defaultConfig()
	uploads = Run{Scenario: "uploads", Config: cfg}
	for i, im := range impls {
		r := Result{Impl: im.Name, Label: im.Label, WallSeconds: float64(i + 1), PeakHWM: 1, PeakRSSAboveBaseline: int64(i+1) << 26}
		for k := range 50 {
			r.RSS = append(r.RSS, RSSSample{Seconds: float64(k) * 0.02 * float64(i+1), Bytes: int64(k) * int64(i+1) << 21})
		}
		uploads.Results = append(uploads.Results, r)
	}
	scale = Run{Scenario: "scale", Config: cfg}
	for _, j := range scaleJobs(cfg, scaleVariants) {
		scale.Results = append(scale.Results, Result{Impl: j.Impl, Label: j.Label, Bytes: 512 << 20, WallSeconds: 1 + float64(j.Buffers)/1e4,
			PeakHWM: 1, PeakRSSAboveBaseline: j.Budget + int64(j.Buffers)<<10, Scale: &ScaleResult{Buffers: j.Buffers, Budget: j.Budget}})
	}
	return uploads, scale
}

// -plot draws PNG and SVG files named after the scenario.
func TestPlot(t *testing.T) {
	uploads, scale := fakeRuns()
	dir := t.TempDir()
	for i, ext := range []string{".png", ".svg"} {
		file := filepath.Join(dir, "sub", "memory"+ext)
		plot, name := plotUploads, "uploads"
		if i == 1 {
			plot, name = plotScale, "scale"
		}
		if err := plot(plotPath(file, name), map[string]Run{"uploads": uploads, "scale": scale}[name]); err != nil {
			t.Fatal(err)
		}
		checkImage(t, filepath.Join(dir, "sub", name+"-memory"+ext))
	}
	// A scale run with only some of its points still draws.
	scale.Results = scale.Results[:1]
	if err := plotScale(filepath.Join(dir, "partial.png"), scale); err != nil {
		t.Fatal(err)
	}
	checkImage(t, filepath.Join(dir, "partial.png"))
	uploads.Results = nil
	if err := plotUploads(filepath.Join(dir, "none.png"), uploads); err == nil {
		t.Error("plotted uploads without samples")
	}
	if _, err := parseFlags([]string{"-plot", "memory.gif"}, io.Discard); err == nil {
		t.Error("-plot accepted a .gif")
	}
	if got := plotPath("memory.svg", "scale"); got != "scale-memory.svg" {
		t.Errorf("plotPath = %q", got)
	}
}

// The parent runs the micro and scale scenarios in child processes, prints
// their tables and targets, and draws the scale plot.
func TestParentMainMicroScale(t *testing.T) {
	cfg := tinyConfig()
	cfg.TempDir = t.TempDir()
	cfg.Plot = filepath.Join(t.TempDir(), "curves.svg")
	cfg.ScaleBudgets = cfg.ScaleBudgets[:1]
	for _, sc := range []string{"micro", "scale"} {
		cfg.Scenario = sc
		var out, errs bytes.Buffer
		if code := parentMain(cfg, &out, &errs); code != 0 {
			t.Fatalf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", sc, code, out.String(), errs.String())
		}
		wants := map[string][]string{
			"micro": {"| in-memory write+read, 256 KiB in 64 KiB pieces (Buffer reused) ", "(new Buffer per op)", "| spilled round trip, 512 KiB",
				"| NewBuffer+Close ", "in-memory write+read >= 1.0x a reused bytes.Buffer: ", "spilled round trip >= 0.95x a raw *os.File: ",
				"NewBuffer+Close <= 1 µs and <= 2 allocations: "},
			"scale": {"Concurrency: N buffers at a 256 KiB budget", "| 3       |", "| 200     |", "Budget: spool at 200 buffers", "| 1 MiB ",
				"spool's peak RSS at 200 buffers within 10% of that at 3: ", "multipart-style (no budget)", " spool spill files | multipart-style peak RSS ",
				"| multipart-style files |", "spool's throughput at 200 buffers >= 0.5x its throughput at 3: ",
				"(spill-file creation and closing < 5% of spool's CPU at 200 buffers: measured from the CPU profile; run with -profile DIR)"},
		}[sc]
		for _, want := range append(wants, "Targets:") {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: no %q in the report:\n%s", sc, want, out.String())
			}
		}
		if strings.Contains(out.String(), "n/a") || strings.Contains(out.String(), "| –") {
			t.Errorf("%s: something not measured:\n%s", sc, out.String())
		}
	}
	checkImage(t, plotPath(cfg.Plot, "scale"))
	if _, err := os.Stat(plotPath(cfg.Plot, "micro")); err == nil {
		t.Error("micro drew a plot")
	}

	// -json: one run, nothing else on stdout, nothing on stderr. With
	// -profile, the parent reads each spool child's CPU profile.
	cfg.JSON, cfg.Plot, cfg.Profile = true, "", t.TempDir()
	cfg.Impls = []string{"spool"}
	cfg.ScaleBuffers = cfg.ScaleBuffers[:1]
	var out, errs bytes.Buffer
	if code := parentMain(cfg, &out, &errs); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errs.String())
	}
	var run Run
	if err := json.Unmarshal(out.Bytes(), &run); err != nil {
		t.Fatal(err)
	}
	if len(run.Results) != len(cfg.ScaleBuffers)+len(cfg.ScaleBudgets) || errs.Len() != 0 {
		t.Errorf("%d results, stderr %q", len(run.Results), errs.String())
	}
	for _, r := range run.Results {
		if r.Scale == nil || r.Impl != "spool" || r.PeakHWM <= 0 && readProcIO() != nil || r.Scale.SpillFileCPU == nil || r.Scale.ProfileError != "" {
			t.Errorf("result %+v", r)
		} else if c := r.Scale.SpillFileCPU; c.Match > c.Spool || c.Spool > c.Total {
			t.Errorf("spill files in the profile: %+v", c)
		}
	}
}

// The progress line is drawn and erased with carriage returns, only when
// on; stderr in a test is not a terminal.
func TestProgress(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b, true)
	p.set("uploads 1/2 spool", "last: x")
	p.clear()
	p.set("uploads 2/2 bytes.Buffer", "")
	p.close()
	got := b.String()
	for _, want := range []string{"\r\033[Kbench: uploads 1/2 spool 0.0 s (all: 0 s) · last: x", "\r\033[Kbench: uploads 2/2 bytes.Buffer 0.0 s"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in %q", want, got)
		}
	}
	if !strings.HasSuffix(got, "\r\033[K") || strings.Contains(got, "\n") {
		t.Errorf("progress output %q", got)
	}
	b.Reset()
	p = newProgress(&b, false)
	p.set("x", "y")
	p.clear()
	p.close()
	if b.Len() != 0 || isTerminal(&b) {
		t.Errorf("progress off wrote %q", b.String())
	}
	if f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
		if isTerminal(f) {
			t.Error("/dev/null is a terminal")
		}
		f.Close()
	}
}

// The sampler sees the RSS grow, and reads VmRSS as /proc/self/status
// says.
func TestRSSSampler(t *testing.T) {
	if readProcIO() == nil {
		t.Skip("no /proc")
	}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, ok := readVmRSS(f, make([]byte, 4096))
	want := readProcStatus()["VmRSS"]
	if !ok || got <= 0 || got > want+16<<20 || got < want-16<<20 {
		t.Errorf("readVmRSS = %d, %v; /proc/self/status says %d", got, ok, want)
	}
	s := startRSSSampler(want, time.Millisecond, time.Now())
	time.Sleep(10 * time.Millisecond)
	big := make([]byte, 128<<20) // some of it may be memory the heap already holds
	for i := 0; i < len(big); i += 4096 {
		big[i] = 1
	}
	time.Sleep(20 * time.Millisecond)
	samples := s.stop()
	low, peak := samples[0].Bytes, samples[0].Bytes
	for _, x := range samples {
		low, peak = min(low, x.Bytes), max(peak, x.Bytes)
	}
	if len(samples) < 3 || peak-low < 32<<20 || samples[len(samples)-1].Seconds < 0.02 {
		t.Errorf("%d samples from %d to %d bytes above the baseline", len(samples), low, peak)
	}
	runtime.KeepAlive(big)
}

// Both stores run the blobs scenario in process without a wrong read:
// spool holds what it can in memory within its budget and spills the
// rest, the map holds at most its cap, and every read is counted.
func TestBlobs(t *testing.T) {
	cfg := tinyConfig()
	cfg.TempDir = t.TempDir()
	w := newBlobsWorkload(cfg)
	if again := newBlobsWorkload(cfg); !reflect.DeepEqual(again, w) {
		t.Fatal("blobs workload is not deterministic")
	}
	for _, v := range blobsVariants {
		t.Run(v.Name, func(t *testing.T) {
			res, err := runBlobs(cfg, Job{Impl: v.Name, Label: v.Label})
			if err != nil {
				t.Fatal(err)
			}
			if p := res.problem(); p != "" {
				t.Fatal(p)
			}
			b := res.Blobs
			if res.Uploads != cfg.BlobsCount || res.Bytes != w.Total || b.WriteErrors != 0 || b.LostReads != 0 || b.Reads.Reads != int64(cfg.BlobsReads) ||
				b.Reads.Hits > b.Reads.Reads || b.Reads.Hits == 0 || len(b.Samples) < blobsSamples || b.Budget != cfg.BlobsBudget {
				t.Fatalf("result %+v, blobs %+v", res, b)
			}
			for _, p := range []BlobsPoint{b.AfterWrite, b.End} {
				if p.InMemory == 0 || p.InMemory >= cfg.BlobsCount || p.Data > cfg.BlobsBudget || p.Data <= 0 {
					t.Errorf("%s holds %d blobs, %d bytes, in memory", v.Name, p.InMemory, p.Data)
				}
				if v.Name == spoolImpl && (p.MemoryInUse < p.Data || p.MemoryInUse > cfg.BlobsBudget) {
					t.Errorf("spool holds %d bytes in %d bytes of budget", p.Data, p.MemoryInUse)
				}
			}
			if v.Name == spoolImpl {
				st := b.StatsEnd
				if st.Spills == 0 || st.Reads-b.StatsAfterWrite.Reads != b.Reads.Reads || st.ReadsFromMemory-b.StatsAfterWrite.ReadsFromMemory != b.Reads.Hits {
					t.Errorf("Stats %+v, after the writes %+v; the bench counts %+v", st, b.StatsAfterWrite, b.Reads)
				}
				// In process, the fd limit is left alone.
				if b.MaxSpillFiles < st.SpillFiles || b.MaxSpillFiles == 0 || b.MaxBuffersOnDisk < st.BuffersOnDisk || b.MaxBuffersOnDisk == 0 || b.FDLimit != 0 ||
					b.GOMAXPROCS != runtime.GOMAXPROCS(0) || readProcIO() != nil && b.MaxFDs < b.MaxSpillFiles {
					t.Errorf("spill files %d at most (%d at the end), buffers on disk %d at most, %d descriptors at most, fd limit %d, GOMAXPROCS %d",
						b.MaxSpillFiles, st.SpillFiles, b.MaxBuffersOnDisk, b.MaxFDs, b.FDLimit, b.GOMAXPROCS)
				}
			}
		})
	}
	if _, err := runBlobs(cfg, Job{Impl: "bytes"}); err == nil {
		t.Error("blobs ran bytes.Buffer")
	}
	// The map drops the least recently used blobs past its cap, and a
	// blob larger than the cap is not kept.
	m := newLRUMap(10)
	for i := range 4 {
		m.put(i, make([]byte, 3))
	}
	if hit, _ := m.get(0, make([]byte, 3), func([]byte) {}); hit || len(m.items) != 3 || m.bytes != 9 {
		t.Errorf("after 4 puts of 3 bytes under a cap of 10 and a miss: %d items, %d bytes", len(m.items), m.bytes)
	}
	if hit, _ := m.get(0, make([]byte, 3), func([]byte) {}); !hit {
		t.Error("a blob just fetched again misses")
	}
	m.put(9, make([]byte, 11))
	if _, ok := m.items[9]; ok || m.bytes > 10 {
		t.Errorf("a blob past the cap is kept: %d bytes", m.bytes)
	}
}

// Every variant of the slow scenario runs in process, the HTTP ones with
// their clients in a child process (this test binary, see TestMain), with
// every upload in flight at once and checked.
func TestSlow(t *testing.T) {
	cfg := tinyConfig()
	cfg.TempDir = t.TempDir()
	w := newSlowWorkload(cfg, cfg.SlowUploads)
	for _, v := range slowVariants {
		t.Run(v.Name, func(t *testing.T) {
			res, err := runSlow(cfg, Job{Impl: v.Name, Label: v.Label})
			if err != nil {
				t.Fatal(err)
			}
			if p := res.problem(); p != "" {
				t.Fatal(p)
			}
			s := res.Slow
			if res.Uploads != cfg.SlowUploads || res.Bytes != w.Total || s.Uploads != cfg.SlowUploads || s.MaxInFlight != int64(cfg.SlowUploads) || s.Fewer != "" {
				t.Fatalf("result %+v, slow %+v", res, s)
			}
			spooled := v.Name == "copy" || v.Name == "http"
			if spooled != (s.Budget > 0) || spooled && (s.Stats.Spills == 0 || s.Stats.PeakMemoryInUse > cfg.SlowBudget || s.Stats.PeakMemoryInUse == 0 || s.Stats.Buffers != 0) {
				t.Errorf("%s: budget %d, Stats %+v", v.Name, s.Budget, s.Stats)
			}
			if http := strings.HasPrefix(v.Name, "http"); http != (s.Client != nil) || http && (s.Client.Uploads != cfg.SlowUploads || s.Client.Connected != cfg.SlowUploads) {
				t.Errorf("%s: client %+v", v.Name, s.Client)
			}
		})
	}
	// The body arrives in pieces of SlowRead bytes, whatever the reader
	// asks for, and the same bytes as one read of the whole.
	body := newSlowBody(cfg, 10_000, 7)
	var got []byte
	for {
		p := make([]byte, 5000)
		n, err := body.Read(p)
		if n > cfg.SlowRead {
			t.Fatalf("read %d bytes, more than a piece", n)
		}
		got = append(got, p[:n]...)
		if err == io.EOF {
			break
		}
	}
	if len(got) != 10_000 || crc32.Checksum(got, castagnoli) != body.crc {
		t.Errorf("%d bytes, crc %08x, body says %08x", len(got), crc32.Checksum(got, castagnoli), body.crc)
	}
}

// The HTTP variants run as many uploads as the fd limit allows, unless
// told how many.
func TestSlowHTTPUploads(t *testing.T) {
	cfg := tinyConfig()
	cfg.SlowUploads = 10_000
	for _, c := range []struct {
		soft   uint64
		set, n int
		fewer  bool
	}{{0, 0, 10_000, false}, {1 << 20, 0, 10_000, false}, {20_064, 0, 10_000, false}, {20_000, 0, 9_968, true}, {20_000, 12_000, 12_000, false}, {100, 0, 18, true}} {
		cfg.SlowHTTPUploads = c.set
		n, why := slowHTTPUploads(cfg, c.soft)
		if n != c.n || (why != "") != c.fewer {
			t.Errorf("soft limit %d, -slow-http-uploads %d: %d uploads (%q), want %d", c.soft, c.set, n, why, c.n)
		}
	}
	p, tail, length := slowParts(3, 10)
	if int64(len(p)+10+len(tail)) != length || !strings.Contains(tail, "00000000\r\n--"+slowBoundary+"--\r\n") || !strings.Contains(p, `filename="upload-3.bin"`) {
		t.Errorf("parts %q, %q, length %d", p, tail, length)
	}
}

// The parent runs blobs and slow in child processes, prints their tables
// and targets, and draws their plots.
func TestParentMainBlobsSlow(t *testing.T) {
	cfg := tinyConfig()
	cfg.TempDir = t.TempDir()
	cfg.Plot = filepath.Join(t.TempDir(), "curves.svg")
	cfg.SlowUploads = 40
	// Not http-multipart, which only explains (TestSlow runs it).
	cfg.Impls = []string{"spool", "map", "copy", "copy-discard", "http", "http-discard"}
	for _, sc := range []string{"blobs", "slow"} {
		cfg.Scenario = sc
		var out, errs bytes.Buffer
		if code := parentMain(cfg, &out, &errs); code != 0 {
			t.Fatalf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", sc, code, out.String(), errs.String())
		}
		wants := map[string][]string{
			"blobs": {"scenario blobs: 1,000 blobs", "| spool (LeastFrequentlyUsed), after the writes ", "| map of []byte, LRU, after the reads ",
				"| spool (LeastFrequentlyUsed) ", "efficiency (data held in memory ÷ MemoryInUse) >= 0.8 after the writes and after the reads: ", "(next to the map: hit ratio ",
				"- PASS 1,000 blobs (up to ", "spilled at once) under an fd limit of 256: spill files open <= 4 × GOMAXPROCS + 4 = "},
			"slow": {"scenario slow: 40 uploads", "| io.Copy into spool ", "| io.Copy harness, discarding sink ", "| spoolhttp.ParseMultipartForm ",
				"| HTTP harness, discarding handler ", "io.Copy into spool: peak RSS above the discarding harness <= 1.25x budget: ",
				"spoolhttp.ParseMultipartForm: peak RSS above the discarding harness <= 1.25x budget: ", "writers waited"},
		}[sc]
		for _, want := range append(wants, "Targets:", "Plot: "+plotPath(cfg.Plot, sc)) {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: no %q in the report:\n%s", sc, want, out.String())
			}
		}
		if readProcIO() != nil && (strings.Contains(out.String(), "n/a") || strings.Contains(out.String(), "FAILED") || strings.Contains(out.String(), "NOTE")) {
			t.Errorf("%s: something not measured or failed:\n%s", sc, out.String())
		}
		if readProcIO() != nil {
			checkImage(t, plotPath(cfg.Plot, sc))
		}
	}
}

// A blobs run whose writes failed says so, with the fd limit; a slow run
// with fewer HTTP uploads says why.
func TestBlobsSlowReportFailures(t *testing.T) {
	cfg := tinyConfig()
	b := &BlobsResult{Blobs: 100, WriteErrors: 40, LostReads: 7, FirstWriteError: "blob 60: too many open files", FDSoft: 20000, FDHard: 20000,
		AfterWrite: BlobsPoint{InMemory: 10, Data: 900, MemoryInUse: 1000}, End: BlobsPoint{InMemory: 10, Data: 700, MemoryInUse: 1000}, Buckets: make([]Window, cacheBuckets)}
	b.StatsEnd.BuffersOnDisk, b.StatsEnd.SpillFiles = 50, 4
	run := Run{Scenario: "blobs", Config: cfg, Results: []Result{{Impl: spoolImpl, Label: "spool (LeastFrequentlyUsed)", Uploads: 60, WantUploads: 100, Errors: 1, Blobs: b}}}
	var out bytes.Buffer
	printBlobsReport(&out, run)
	for _, want := range []string{"FAILED: spool (LeastFrequentlyUsed): 40 of 100 blob writes failed, and their 7 reads were not made; first: blob 60: too many open files.",
		"limit on open files is 20,000 (hard limit 20,000)", "4 spill files open at the end, for 50 buffers on disk", "- MISS spool's efficiency (data held in memory ÷ MemoryInUse) >= 0.8 after the writes and after the reads: 0.900 and 0.700"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in the report:\n%s", want, out.String())
		}
	}
	run = Run{Scenario: "slow", Config: cfg, Results: []Result{
		{Impl: "http", Label: "spoolhttp.ParseMultipartForm", PeakHWM: 1, PeakRSSAboveBaseline: 100 << 20, Slow: &SlowResult{Uploads: 90, Fewer: "the limit", MaxInFlight: 90}},
		{Impl: "http-discard", Label: "HTTP harness, discarding handler", PeakHWM: 1, PeakRSSAboveBaseline: 99 << 20, Slow: &SlowResult{Uploads: 90, Fewer: "the limit", MaxInFlight: 90}},
	}}
	out.Reset()
	printSlowReport(&out, run)
	// 1 MiB over a 256 KiB budget is 4x: a miss.
	for _, want := range []string{"NOTE: spoolhttp.ParseMultipartForm ran 90 uploads, not 100: the limit.", "- n/a  io.Copy into spool: peak RSS above the discarding harness <= 1.25x budget: not run",
		"- MISS spoolhttp.ParseMultipartForm: peak RSS above the discarding harness <= 1.25x budget: 4.00x (1.0 MiB above"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in the report:\n%s", want, out.String())
		}
	}
}

// tinyChurn makes cfg's churn scenario tiny: 120 buffers of 64 KiB
// spilled, 108 closed, 108 new (15 MiB written).
func tinyChurn(cfg *Config) {
	cfg.ChurnBuffers, cfg.ChurnClose, cfg.ChurnNew, cfg.ChurnSize = 120, 108, 108, 64<<10
}

// The churn scenario runs in process: every buffer spills, reads back
// right, and the spill files found through /proc/self/fd are the arena's,
// holding nothing once every buffer is closed and gone after Close.
func TestChurn(t *testing.T) {
	cfg := tinyConfig()
	tinyChurn(&cfg)
	cfg.TempDir = t.TempDir()
	res, err := runChurn(cfg, Job{Impl: spoolImpl, Label: "spool"})
	if err != nil {
		t.Fatal(err)
	}
	if p := res.problem(); p != "" {
		t.Fatal(p)
	}
	c := res.Churn
	n := cfg.ChurnBuffers + cfg.ChurnNew
	if res.Uploads != n || res.Bytes != int64(n)*cfg.ChurnSize || res.Store.Spills != int64(n) || len(c.Points) != 5 {
		t.Fatalf("result %+v, churn %+v", res, c)
	}
	live := map[string]int{churnAfterSpill: cfg.ChurnBuffers, churnAfterClose: cfg.ChurnBuffers - cfg.ChurnClose,
		churnAfterChurn: cfg.ChurnBuffers - cfg.ChurnClose + cfg.ChurnNew, churnAfterAll: 0, churnAfterManager: 0}
	for _, p := range c.Points {
		want, ok := live[p.When]
		if !ok || p.BuffersOnDisk != want || p.DiskLive != int64(want)*cfg.ChurnSize || p.DiskInUse < p.DiskLive {
			t.Errorf("%s: want %d buffers on disk: %+v", p.When, want, p)
		}
		if _, err := os.Stat("/proc/self/fd"); err != nil {
			continue
		}
		// The test's own files in the directory are not spool's: none.
		if p.Files != p.SpillFiles || p.Allocated < 0 {
			t.Errorf("%s: found %d spill files, Stats says %d: %+v", p.When, p.Files, p.SpillFiles, p)
		}
		if p.When == churnAfterSpill && p.Allocated < p.DiskLive {
			t.Errorf("%s: %d bytes allocated for %d live", p.When, p.Allocated, p.DiskLive)
		}
		if (p.When == churnAfterAll || p.When == churnAfterManager) && (p.Allocated != 0 || p.FileSize != 0) {
			t.Errorf("%s: %d bytes allocated, files of %d bytes", p.When, p.Allocated, p.FileSize)
		}
	}
	if p := c.point(churnAfterManager); p.SpillFiles != 0 || p.Files > 0 {
		t.Errorf("after Close: %+v", p)
	}
	if _, err := runChurn(cfg, Job{Impl: "bytes"}); err == nil {
		t.Error("churn ran bytes.Buffer")
	}
}

// The churn report: a table of the steps, the target measured after the
// churn, and n/a where the files could not be looked for.
func TestChurnReport(t *testing.T) {
	cfg := tinyConfig()
	tinyChurn(&cfg)
	c := &ChurnResult{Buffers: 120, Closed: 108, New: 108, Size: 64 << 10, TempDir: "/tmp", Points: []ChurnPoint{
		{When: churnAfterSpill, BuffersOnDisk: 120, SpillFiles: 4, Files: 4, FileSize: 120 << 16, Allocated: 120 << 16, DiskInUse: 120 << 16, DiskLive: 120 << 16},
		{When: churnAfterClose, BuffersOnDisk: 12, SpillFiles: 4, Files: 4, FileSize: 120 << 16, Allocated: 30 << 16, DiskInUse: 12 << 16, DiskLive: 12 << 16},
		{When: churnAfterChurn, BuffersOnDisk: 120, SpillFiles: 4, Files: 4, FileSize: 160 << 16, Allocated: 160 << 16, DiskInUse: 120 << 16, DiskLive: 120 << 16},
		{When: churnAfterAll, SpillFiles: 4, Files: 4},
		{When: churnAfterManager},
	}}
	run := Run{Scenario: "churn", Config: cfg, Results: []Result{{Impl: spoolImpl, Label: "spool", Uploads: 228, WantUploads: 228, Churn: c}}}
	var out bytes.Buffer
	printChurnReport(&out, run)
	for _, want := range []string{"| after the churn ", "|               1.333x |", "- MISS after the churn (120 spilled, 108 closed, 108 spilled), blocks allocated to spill files <= 1.25x Stats().DiskLive: 1.33x (10 MiB allocated in 4 spill files for 7.50 MiB live",
		"(after the closes: 1.88 MiB allocated for 768 KiB live, 2.50x; after closing every buffer: 0 B allocated; spill files found open after Manager.Close: 0)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in the report:\n%s", want, out.String())
		}
	}
	for i := range c.Points {
		c.Points[i].Files, c.Points[i].FileSize, c.Points[i].Allocated = -1, -1, -1
	}
	c.MeasureError = "no /proc/self/fd on this system"
	out.Reset()
	printChurnReport(&out, run)
	if want := "- n/a  after the churn (120 spilled, 108 closed, 108 spilled), blocks allocated to spill files <= 1.25x Stats().DiskLive: no /proc/self/fd on this system"; !strings.Contains(out.String(), want) {
		t.Errorf("no %q in the report:\n%s", want, out.String())
	}
}

// The parent runs churn in a child process and prints its table and
// target; the spill files are found.
func TestParentMainChurn(t *testing.T) {
	cfg := tinyConfig()
	tinyChurn(&cfg)
	cfg.TempDir = t.TempDir()
	cfg.Scenario = "churn"
	var out, errs bytes.Buffer
	if code := parentMain(cfg, &out, &errs); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errs.String())
	}
	for _, want := range []string{"scenario churn: one Manager (budget 256 KiB) spills 120 buffers of 64 KiB each", "| after the spills ", "| after Manager.Close ",
		"Targets:", "after the churn (120 spilled, 108 closed, 108 spilled), blocks allocated to spill files <= 1.25x Stats().DiskLive: ", "Manager's TempDir (" + cfg.TempDir + ")"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in the report:\n%s", want, out.String())
		}
	}
	if readProcIO() != nil && (strings.Contains(out.String(), "n/a") || strings.Contains(out.String(), "FAILED")) {
		t.Errorf("something not measured or failed:\n%s", out.String())
	}
}

// busyOpening opens and closes files in dir until d has passed.
//
//go:noinline
func busyOpening(t *testing.T, dir string, d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
		f, err := os.OpenFile(filepath.Join(dir, "f"), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

// readCPUShare reads a CPU profile runtime/pprof wrote: the samples of a
// loop that opens files are found by their stacks, and spillFileStack
// picks the stacks of spool's spill files and no others.
func TestReadCPUShare(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cpu.pprof")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Skip("CPU profiling unavailable:", err)
	}
	busyOpening(t, dir, 300*time.Millisecond)
	pprof.StopCPUProfile()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	opening := func(stack []string) bool {
		return slices.Contains(stack, "github.com/spoolkit/spool/bench.busyOpening")
	}
	s, err := readCPUShare(path, opening)
	if err != nil {
		t.Fatal(err)
	}
	// Other tests and the runtime take samples too: the loop's need only
	// be there (3 of its 30-odd, on a loaded machine under -race).
	if s.Samples < 3 || s.Total < s.Samples*int64(time.Millisecond) || s.Match < 3*s.Total/s.Samples || s.Match > s.Total || s.Spool != 0 {
		t.Errorf("profile of a loop opening files: %+v, share %.2f", s, s.Share())
	}
	if _, err := readCPUShare(filepath.Join(dir, "none"), opening); err == nil {
		t.Error("read a profile that does not exist")
	}
	if err := os.WriteFile(path, []byte("not gzip"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readCPUShare(path, opening); err == nil {
		t.Error("read a profile that is not one")
	}

	for _, c := range []struct {
		stack []string
		want  bool
	}{
		{[]string{"syscall.Syscall6", "golang.org/x/sys/unix.openat", "golang.org/x/sys/unix.Open", spoolPkg + "openAnonymous", spoolPkg + "osFS.createTemp", spoolPkg + "(*arena).pick"}, true},
		{[]string{"internal/poll.(*FD).Close", "os.(*file).close", "os.(*File).Close", spoolPkg + "(*arena).close", spoolPkg + "(*Manager).Close"}, true},
		{[]string{"os.OpenFile", spoolPkg + "createNamed"}, true},
		{[]string{"os.OpenFile", "os.ReadFile", "main.readProcIO"}, false},
		{[]string{"syscall.pwrite", spoolPkg + "(*arena).writeAt"}, false},
		{nil, false},
	} {
		if got := spillFileStack(c.stack); got != c.want {
			t.Errorf("spillFileStack(%q) = %v", c.stack, got)
		}
	}
}

// The scale report shows the spill files and, with profiles, their share
// of spool's CPU, with the target at the most buffers; the blobs report
// checks the spill files spool kept open under its fd limit.
func TestScaleBlobsTargets(t *testing.T) {
	_, scale := fakeRuns()
	for i := range scale.Results {
		r := &scale.Results[i]
		r.Store.Files = 4
		if r.Impl == spoolImpl && r.Scale.Budget == scale.Config.Budget {
			r.Scale.SpillFileCPU = &ProfileShare{Samples: 100, Total: 1e9, Spool: 5e8, Match: int64(r.Scale.Buffers) * 1e4}
		}
	}
	var out bytes.Buffer
	printScaleReport(&out, scale)
	for _, want := range []string{"| spool CPU in spill files |", "|                 4 |                     0.0% |", "|                     1.0% |",
		"- MISS spill-file creation and closing < 5% of spool's CPU at 10,000 buffers: 10.00% (100 ms of 1000 ms in the child's CPU profile, 100 samples; 20.00% of the samples with spool on the stack; 4 spill files)",
		"- PASS spool's throughput at 10,000 buffers >= 0.5x its throughput at 10: 0.500x (0.27 GB/s vs 0.54 GB/s)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in the report:\n%s", want, out.String())
		}
	}

	cfg := tinyConfig()
	b := &BlobsResult{Blobs: 100_000, FDSoft: 256, FDHard: 256, FDLimit: 256, GOMAXPROCS: 2, MaxSpillFiles: 13, MaxBuffersOnDisk: 86_000, MaxFDs: 20,
		Buckets: make([]Window, cacheBuckets)}
	run := Run{Scenario: "blobs", Config: cfg, Results: []Result{{Impl: spoolImpl, Label: "spool (LeastFrequentlyUsed)", Uploads: 100_000, WantUploads: 100_000, Blobs: b}}}
	out.Reset()
	printBlobsReport(&out, run)
	want := "- MISS 100,000 blobs (up to 86,000 spilled at once) under an fd limit of 256: spill files open <= 4 × GOMAXPROCS + 4 = 12: 13 (Stats().SpillFiles at most; BuffersOnDisk 86,000 at most), 20 descriptors open at most, 0 write errors"
	if !strings.Contains(out.String(), want) {
		t.Errorf("no %q in the report:\n%s", want, out.String())
	}
	b.MaxSpillFiles = 4
	out.Reset()
	printBlobsReport(&out, run)
	if want := "- PASS 100,000 blobs (up to 86,000 spilled at once) under an fd limit of 256: spill files open <= 4 × GOMAXPROCS + 4 = 12: 4 "; !strings.Contains(out.String(), want) {
		t.Errorf("no %q in the report:\n%s", want, out.String())
	}
	b.FDLimit, b.FDSoft, b.FDHard = 0, 20_000, 20_000
	out.Reset()
	printBlobsReport(&out, run)
	if want := "- n/a  spilled buffers under an fd limit: spill files open <= 4 × GOMAXPROCS + 4: no limit set"; !strings.Contains(out.String(), want) {
		t.Errorf("no %q in the report:\n%s", want, out.String())
	}
}

// The uploads report prints each implementation's write latency and the
// target of spool's p99.9 against a temporary file's, and, with mutex
// profiles, the lock contention they show.
func TestReportLatency(t *testing.T) {
	lat := func(p50, p99, p999, max float64) Latency {
		return Latency{Count: 49478, P50: p50, P99: p99, P999: p999, Max: max}
	}
	run := Run{Scenario: "uploads", Config: tinyConfig(), NumCPU: 2, Results: []Result{
		{Impl: "tempfile", Label: "os.CreateTemp", Bytes: 1e9, WantBytes: 1e9, WallSeconds: 1, WriteLatency: lat(0.009, 0.019, 0.1, 9.77), LockWaitSeconds: 0.0006,
			ChildSeconds: 1.2, OtherCPUSeconds: 0.12},
		{Impl: "spool", Label: "spool", Bytes: 1e9, WantBytes: 1e9, WallSeconds: 1, WriteLatency: lat(0.009, 0.062, 0.15, 15.3), LockWaitSeconds: 0.77,
			ChildSeconds: 1.2, OtherCPUSeconds: -1},
	}}
	var b bytes.Buffer
	printReport(&b, run)
	for _, want := range []string{"| implementation | writes |  p50 |   p99 |  p99.9 |     max | p99.9 ÷ os.CreateTemp | blocked on locks | others' CPU |",
		"| os.CreateTemp  | 49,478 | 9 µs | 19 µs | 100 µs | 9.77 ms |                 1.00x |           600 µs |          5% |",
		"| spool          | 49,478 | 9 µs | 62 µs | 150 µs | 15.3 ms |                 1.50x |         770.0 ms |         n/a |",
		"- PASS spool's p99.9 write latency <= 2x a temp file per upload's: 1.50x (150 µs vs os.CreateTemp 100 µs)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in the report:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "Lock contention") {
		t.Errorf("a mutex table without profiles:\n%s", b.String())
	}

	run.Results[1].WriteLatency.P999 = 0.2
	run.Results[0].Mutex = &MutexProfile{RuntimeDelay: 262e3}
	run.Results[1].Mutex = &MutexProfile{Contentions: 236, Delay: 638e6, StoreContentions: 14, StoreDelay: 277e3, RuntimeDelay: 157e3, Sites: []MutexSite{
		{Func: spoolPkg + "(*memory).put", Lock: "sync.Mutex", Contentions: 63, Delay: 547.7e6},
		{Func: spoolPkg + "(*Manager).evict", Lock: "store.mu", Contentions: 14, Delay: 277e3}}}
	b.Reset()
	printReport(&b, run)
	for _, want := range []string{"- PASS spool's p99.9 write latency <= 2x a temp file per upload's: 2.00x (200 µs vs os.CreateTemp 100 µs)",
		"| os.CreateTemp  |           0 |                 0 µs |                     – |     – |                    262 µs |                                       – |",
		"| spool          |         236 |             638.0 ms |                277 µs |  0.0% |                    157 µs | spool.(*memory).put (sync.Mutex), 85.8% |",
		"  spool's locks were most waited for when released by: spool.(*memory).put (sync.Mutex) 547.7 ms in 63; spool.(*Manager).evict (store.mu) 277 µs in 14"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in the report:\n%s", want, b.String())
		}
	}
	run.Results[1].WriteLatency.P999 = 0.25
	run.Results[0].Mutex, run.Results[0].MutexError = nil, "open x.mutex.pprof: no such file or directory"
	b.Reset()
	printReport(&b, run)
	for _, want := range []string{"- MISS spool's p99.9 write latency <= 2x a temp file per upload's: 2.50x (250 µs vs os.CreateTemp 100 µs)",
		"NOTE: no mutex profile for os.CreateTemp: open x.mutex.pprof: no such file or directory"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in the report:\n%s", want, b.String())
		}
	}
	run.Results = run.Results[1:]
	b.Reset()
	printReport(&b, run)
	if want := "- n/a  spool's p99.9 write latency <= 2x a temp file per upload's: not run"; !strings.Contains(b.String(), want) {
		t.Errorf("no %q in the report:\n%s", want, b.String())
	}

	for ms, want := range map[float64]string{0.009: "9 µs", 0.9994: "999 µs", 1.234: "1.23 ms", 12.34: "12.3 ms", 1520: "1.52 s", math.NaN(): "–"} {
		if got := latCell(ms); got != want {
			t.Errorf("latCell(%g) = %q, want %q", ms, got, want)
		}
	}
	if got := summarize([]time.Duration{3, 1, 2, 4}); got.Count != 4 || got.P50 != 2e-6 || got.Max != 4e-6 {
		t.Errorf("summarize = %+v", got)
	}
}

// mutexSite tells the unlock sites of sync locks from runtime-internal
// locks, and spool's store lock from its other locks.
func TestMutexSite(t *testing.T) {
	for _, c := range []struct {
		stack      []string
		fn, lock   string
		syncLocked bool
	}{
		{[]string{"sync.(*Mutex).Unlock", "sync.(*RWMutex).Unlock", spoolPkg + "(*Manager).evict", spoolPkg + "(*Manager).freeMemory"}, spoolPkg + "(*Manager).evict", "store.mu", true},
		{[]string{"sync.(*RWMutex).Unlock", spoolPkg + "(*store).unlock", spoolPkg + "(*Buffer).Write", "main.upload"}, spoolPkg + "(*store).unlock", "store.mu", true},
		{[]string{"sync.(*RWMutex).RUnlock", spoolPkg + "(*Manager).makeRoom"}, spoolPkg + "(*Manager).makeRoom", "store.mu", true},
		{[]string{"sync.(*Mutex).Unlock", spoolPkg + "(*memory).put", spoolPkg + "(*store).ensureSlot"}, spoolPkg + "(*memory).put", "sync.Mutex", true},
		{[]string{"sync.(*RWMutex).RUnlock", spoolPkg + "(*admission).forget"}, spoolPkg + "(*admission).forget", "sync.RWMutex", true},
		{[]string{"sync.(*Mutex).Unlock", "golang.org/x/sync/semaphore.(*Weighted).TryAcquire", spoolPkg + "(*budget).tryAcquire"}, "golang.org/x/sync/semaphore.(*Weighted).TryAcquire", "sync.Mutex", true},
		{[]string{"internal/sync.(*Mutex).Unlock", "runtime.deferreturn", "main.f"}, "main.f", "sync.Mutex", true},
		{[]string{"sync.(*Mutex).Unlock"}, "?", "sync.Mutex", true},
		{[]string{"sync.(*Mutex).Unlock", "main.hold.deferwrap1", "main.hold"}, "main.hold", "sync.Mutex", true},
		{[]string{"runtime.unlock", "runtime.chansend", "main.f", "sync.(*WaitGroup).Go.func1"}, "", "", false},
		{[]string{"runtime.unlockWithRank", "runtime.unlock", "runtime.schedule", "runtime.mcall"}, "", "", false},
		{nil, "", "", false},
	} {
		s, ok := mutexSite(c.stack)
		if ok != c.syncLocked || s.Func != c.fn || s.Lock != c.lock {
			t.Errorf("mutexSite(%q) = %+v, %v; want %s (%s), %v", c.stack, s, ok, c.fn, c.lock, c.syncLocked)
		}
	}
}

// holdMutex takes mu, waits d and releases it: others wait for it.
//
//go:noinline
func holdMutex(mu *sync.Mutex, d time.Duration) {
	mu.Lock()
	defer mu.Unlock()
	time.Sleep(d)
}

// readMutexProfile reads a mutex profile runtime/pprof wrote: the
// contention of goroutines waiting for a mutex is charged to the function
// that released it.
func TestReadMutexProfile(t *testing.T) {
	prev := runtime.SetMutexProfileFraction(1)
	defer runtime.SetMutexProfileFraction(prev)
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for range 5 {
				holdMutex(&mu, time.Millisecond)
			}
		})
	}
	wg.Wait()
	dir := t.TempDir()
	if err := writeProfile(dir, "m.mutex.pprof", "mutex"); err != nil {
		t.Fatal(err)
	}
	mp, err := readMutexProfile(filepath.Join(dir, "m.mutex.pprof"))
	if err != nil {
		t.Fatal(err)
	}
	var site *MutexSite
	for i := range mp.Sites {
		if mp.Sites[i].Func == "github.com/spoolkit/spool/bench.holdMutex" {
			site = &mp.Sites[i]
		}
	}
	// 4 goroutines take turns 20 times for 1 ms each: some of them wait,
	// most of the time.
	if site == nil || site.Lock != "sync.Mutex" || site.Contentions < 3 || site.Delay < int64(3*time.Millisecond) || mp.Delay < site.Delay || mp.Contentions < site.Contentions {
		t.Errorf("profile of goroutines taking turns at a mutex: %+v", mp)
	}
	if _, err := readMutexProfile(filepath.Join(dir, "none")); err == nil {
		t.Error("read a profile that does not exist")
	}
}

// The shrink scenario runs in process: every upload reads back right,
// SetMemoryBudget is called once half the bytes are written, and from its
// return MemoryInUse keeps to the new budget, or after ErrOverBudget only
// falls until it does.
func TestShrink(t *testing.T) {
	cfg := tinyConfig()
	cfg.TempDir = t.TempDir()
	res, err := runShrink(cfg, Job{Impl: spoolImpl, Label: "spool"})
	if err != nil {
		t.Fatal(err)
	}
	if p := res.problem(); p != "" {
		t.Fatal(p)
	}
	s := res.Shrink
	w := newWorkload(cfg.Seed, cfg.Total, cfg.MinSize, cfg.MaxSize)
	if s == nil || s.At != shrinkPoint(cfg.ShrinkAt, w.Total) || s.Written < s.At || s.After > len(w.Uploads) || s.Budget != cfg.ShrinkBudget || s.To != cfg.ShrinkTo {
		t.Fatalf("shrink %+v", s)
	}
	if !(s.Called <= s.Returned && s.Returned <= s.End) || s.Samples <= 0 || s.MaxAt < s.Returned || len(s.Timeline) == 0 {
		t.Errorf("times: called %g, returned %g, end %g, max at %g; %d samples, %d in the timeline", s.Called, s.Returned, s.End, s.MaxAt, s.Samples, len(s.Timeline))
	}
	if !slices.IsSortedFunc(s.Timeline, func(a, b InUseSample) int { return cmp.Compare(a.Seconds, b.Seconds) }) {
		t.Error("timeline out of order")
	}
	switch {
	case s.Err == "":
		if !s.Held() || s.InUseAfter > s.To {
			t.Errorf("SetMemoryBudget returned nil, then MemoryInUse went up to %d > %d", s.MaxInUse, s.To)
		}
	case !s.OverBudget || !s.HeldOnceFit():
		t.Errorf("SetMemoryBudget: %s (ErrOverBudget: %v); %d rises, within budget from %g, at most %d then", s.Err, s.OverBudget, s.Rises, s.FitAt, s.MaxAfterFit)
	}
	if s.Final.MemoryBudget != cfg.ShrinkTo || s.Final.PeakMemoryInUse > cfg.ShrinkBudget || s.Final.MemoryInUse != 0 {
		t.Errorf("final stats %+v", s.Final)
	}
	if s.PeakBefore <= s.To {
		t.Errorf("the tiny workload never filled more than the new budget: peak %d before the shrink", s.PeakBefore)
	}
	if _, err := runShrink(cfg, Job{Impl: "bytes"}); err == nil {
		t.Error("shrink ran bytes.Buffer")
	}
	for at, want := range map[float64]int64{0.5: 50, 1: 100, 1e-9: 1, 0.333: 34} {
		if got := shrinkPoint(at, 100); got != want {
			t.Errorf("shrinkPoint(%g, 100) = %d, want %d", at, got, want)
		}
	}
}

// fakeShrink returns a shrink run with made-up results: SetMemoryBudget
// returned nil after 7.38 ms and MemoryInUse stayed within the budget.
func fakeShrink() Run {
	cfg := defaultConfig()
	cfg.Scenario = "shrink"
	s := &ShrinkResult{Budget: 64 << 20, To: 16 << 20, At: 3 << 28, Written: 3<<28 + 5, After: 290, Uploads: 367, Called: 0.38, Returned: 0.38738, End: 0.86,
		InUseBefore: 49 << 20, InUseAfter: 16 << 20, PeakBefore: 64 << 20, Samples: 33253, MaxInUse: 16 << 20, MaxAt: 0.39, FitAt: 0.38738,
		MaxAfterFit: 16 << 20, Call: ShrinkCall{Evictions: 24, SpilledBytes: 13 << 20, BuffersOnDisk: 77, Buffers: 77}}
	for k := range 87 {
		v := int64(64 << 20)
		if t := float64(k) * 0.01; t >= s.Returned {
			v = int64(16<<20) - int64(k)<<17
		}
		s.Timeline = append(s.Timeline, InUseSample{Seconds: float64(k) * 0.01, InUse: v})
	}
	r := Result{Scenario: "shrink", Impl: spoolImpl, Label: "spool", Clients: 200, Uploads: 367, WantUploads: 367, Bytes: 1614601982, WantBytes: 1614601982,
		WallSeconds: 0.86, Shrink: s, WriteLatency: Latency{Count: 49478, P50: 0.009, P99: 0.055, P999: 0.363, Max: 7.01}}
	for k := range 44 {
		t := float64(k) * 0.02
		rss := int64(79 << 20)
		if t > 0.5 {
			rss = 44 << 20
		}
		r.RSS = append(r.RSS, RSSSample{Seconds: t, Bytes: rss, HeapObjects: rss - 5<<20})
	}
	return Run{Scenario: "shrink", Config: cfg, Results: []Result{r}}
}

// The shrink report: the phases, what SetMemoryBudget returned, and the
// targets, PASS or MISS; the plot draws.
func TestShrinkReport(t *testing.T) {
	run := fakeShrink()
	var b bytes.Buffer
	printShrinkReport(&b, run)
	for _, want := range []string{"SetMemoryBudget(16 MiB) shrinks once the clients have written 50.0% of the bytes (-shrink-at 0.5)",
		"| before the shrink              | 0.00 s | 0.38 s |    768.00 MiB |          290 | 2.12 | 79.0 MiB |    1.23x |       79.0 MiB |             74.0 MiB |         64.0 MiB | 64 MiB |",
		"| after SetMemoryBudget returned | 0.39 s | 0.86 s |    771.80 MiB |           77 | 1.71 | 79.0 MiB |    4.94x |       44.0 MiB |             74.0 MiB |         16.0 MiB | 16 MiB |",
		"SetMemoryBudget(16 MiB) returned nil after 7.38 ms, at 0.38 s: MemoryInUse 49.0 MiB just before the call (peak so far 64.0 MiB), 16.0 MiB at its return.",
		"Over the call, 24 buffers gave up chunks (13 MiB moved to disk) and 0 were skipped as busy; 77 of 77 buffers on disk after it.",
		"read Stats().MemoryInUse 33,253 times in a tight loop (runtime.Gosched between reads): at most 16.0 MiB, at 0.39 s.\n",
		"Spool at the end: 0 spills", "| spool          | 49,478 | 9 µs | 55 µs | 363 µs | 7.01 ms |             0 µs |         n/a |",
		"- PASS MemoryInUse <= 16 MiB from the moment SetMemoryBudget returns: at most 16.0 MiB in 33,253 reads over 0.47 s",
		"- PASS every upload read back intact: 367 of 367 uploads (1.50 GiB) read back with the checksum they were written with"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in the report:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "after the error") || strings.Contains(b.String(), "MISS") {
		t.Errorf("unexpected report:\n%s", b.String())
	}
	checkShrinkPlot := func() {
		t.Helper()
		path := filepath.Join(t.TempDir(), "shrink-memory.png")
		if err := plotShrink(path, run); err != nil {
			t.Fatal(err)
		}
		checkImage(t, path)
	}
	checkShrinkPlot()

	// ErrOverBudget: MemoryInUse above the budget for 10 ms after the
	// return, falling; then an upload read back wrong.
	s := run.Results[0].Shrink
	s.Err, s.OverBudget = "spool: memory in use over the budget: 28966912 bytes in use", true
	s.InUseAfter, s.MaxInUse, s.MaxAt, s.FitAt, s.MaxAfterFit = 27<<20, 27<<20, 0.38738, 0.39738, 16<<20-1
	run.Results[0].Uploads, run.Results[0].ChecksumErrors = 366, 1
	b.Reset()
	printShrinkReport(&b, run)
	for _, want := range []string{"| before the shrink (FAILED) ", `returned ErrOverBudget ("spool: memory in use over the budget: 28966912 bytes in use") after 7.38 ms`,
		"at most 27.0 MiB, at 0.39 s; within 16 MiB from 0.40 s on (10.0 ms after the return), at most 16.0 MiB from then.",
		"- MISS MemoryInUse <= 16 MiB from the moment SetMemoryBudget returns: at most 27.0 MiB in 33,253 reads over 0.47 s",
		"- PASS after the error, MemoryInUse only falls until it is within 16 MiB, and stays within it: 0 reads above it larger than the one before; within it from 0.40 s on, at most 16.0 MiB from then",
		"- MISS every upload read back intact: 366 of 367 uploads (1.50 GiB) read back with the checksum they were written with; 1 read back wrong"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in the report:\n%s", want, b.String())
		}
	}
	checkShrinkPlot()
	s.Rises = 2
	b.Reset()
	printShrinkReport(&b, run)
	if want := "- MISS after the error, MemoryInUse only falls until it is within 16 MiB, and stays within it: 2 reads above it larger than the one before;"; !strings.Contains(b.String(), want) {
		t.Errorf("no %q in the report:\n%s", want, b.String())
	}

	run.Results = nil
	b.Reset()
	printShrinkReport(&b, run)
	if want := "- n/a  MemoryInUse <= 16 MiB from the moment SetMemoryBudget returns: not run"; !strings.Contains(b.String(), want) {
		t.Errorf("no %q in the report:\n%s", want, b.String())
	}
	if err := plotShrink(filepath.Join(t.TempDir(), "none.png"), run); err == nil {
		t.Error("plotted a shrink run without results")
	}
}

// The parent runs shrink in a child process, prints its report with the
// lock contention of its mutex profile (-profile) and draws its plot; the
// uploads report shows each implementation's write latency and lock
// contention.
func TestParentMainShrink(t *testing.T) {
	cfg := tinyConfig()
	cfg.TempDir = t.TempDir()
	cfg.Scenario = "shrink"
	cfg.Plot = filepath.Join(t.TempDir(), "memory.png")
	cfg.Profile = t.TempDir()
	var out, errs bytes.Buffer
	if code := parentMain(cfg, &out, &errs); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errs.String())
	}
	for _, want := range []string{"scenario shrink: 48 uploads", "into one Manager with a 1 MiB budget that SetMemoryBudget(256 KiB) shrinks", "| before the shrink ",
		"| after SetMemoryBudget returned ", "SetMemoryBudget(256 KiB) returned ", "Lock contention", "Targets:",
		"MemoryInUse <= 256 KiB from the moment SetMemoryBudget returns: at most ", "- PASS every upload read back intact: 48 of 48 uploads"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in the report:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "NOTE") || errs.Len() != 0 {
		t.Errorf("unexpected report:\n%s\nstderr:\n%s", out.String(), errs.String())
	}
	for _, kind := range []string{"cpu", "heap", "mutex"} {
		if _, err := os.Stat(filepath.Join(cfg.Profile, "shrink-spool."+kind+".pprof")); err != nil {
			t.Error(err)
		}
	}
	if readProcIO() != nil {
		checkImage(t, plotPath(cfg.Plot, "shrink"))
	}

	cfg.Scenario, cfg.Plot = "uploads", ""
	cfg.Impls = []string{"tempfile", "spool"}
	out.Reset()
	errs.Reset()
	if code := parentMain(cfg, &out, &errs); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errs.String())
	}
	for _, want := range []string{"| implementation | writes |", "| p99.9 ÷ os.CreateTemp |", "Lock contention", "| on spool's store lock |",
		"spool's p99.9 write latency <= 2x a temp file per upload's: "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in the report:\n%s", want, out.String())
		}
	}
	// The temporary file's row of the contention table: no spool lock.
	// Its count is not checked: the harness's own mutex may be contended
	// on a loaded machine (it was, once, in CI).
	if !regexp.MustCompile(`\| os\.CreateTemp  \| +\d+ \| +[^|]+ \| +– \| +– \|`).MatchString(out.String()) {
		t.Errorf("no contention row for os.CreateTemp without spool's locks in the report:\n%s", out.String())
	}
	// The only target not measured: no per-buffer spool ran.
	if strings.Count(out.String(), "n/a") != 1 || strings.Contains(out.String(), "NOTE") {
		t.Errorf("something not measured:\n%s", out.String())
	}
}

// The diskwait scenario runs in process, both variants, under a disk
// budget far below the uploads in flight: with waiting, every upload
// completes, intact, within the budget (the refusals that break
// deadlocks retried); without it, writes fail at once with ErrDiskBudget
// and nothing waits.
func TestDiskWait(t *testing.T) {
	cfg := tinyConfig()
	cfg.TempDir = t.TempDir()
	cfg.Clients, cfg.Total = 16, 8<<20 // uploads in flight well past the budgets: the nowait variant meets a spent one
	w := newWorkload(cfg.Seed, cfg.Total, cfg.MinSize, cfg.MaxSize)
	for _, v := range diskwaitVariants {
		t.Run(v.Name, func(t *testing.T) {
			res, err := runDiskWait(cfg, Job{Impl: v.Name, Label: v.Label})
			if err != nil {
				t.Fatal(err)
			}
			if p := res.problem(); p != "" {
				t.Fatal(p)
			}
			d := res.DiskWait
			if d == nil || d.Wait != (v.Name != diskwaitNoWait) || d.Reserve != (v.Name == diskwaitReserve) || d.DiskBudget != cfg.DiskWaitBudget || d.MaxRetries != cfg.DiskWaitRetries {
				t.Fatalf("result %+v", d)
			}
			if res.Label != v.Label || res.WantUploads != len(w.Uploads) || res.WantBytes != w.Total || res.WallSeconds <= 0 || res.WriteLatency.Count == 0 {
				t.Errorf("result %+v", res)
			}
			// Every upload completed intact or was given up; the counts
			// add up.
			if res.Uploads+d.GaveUp != len(w.Uploads) || d.Intact != res.Uploads || d.FirstTry > res.Uploads ||
				d.Attempts != int64(len(w.Uploads))+d.Retries || d.Failed() != d.Retries+int64(d.GaveUp) || d.Other != 0 || d.DeadlineHit != 0 {
				t.Errorf("%d of %d uploads, %d intact, %d at first attempt, %d given up; %d attempts, %d retries, failed: %d refused, %d deadline, %d other",
					res.Uploads, len(w.Uploads), d.Intact, d.FirstTry, d.GaveUp, d.Attempts, d.Retries, d.Refused, d.DeadlineHit, d.Other)
			}
			if d.FailedWrites.Count != int(d.Failed()) || d.Failed() > 0 && d.WastedBytes <= 0 {
				t.Errorf("%d failed attempts, %d failed writes, %d bytes written by them", d.Failed(), d.FailedWrites.Count, d.WastedBytes)
			}
			if !d.WithinBudget() || d.PeakDiskInUse <= 0 || d.Final.DiskBudget != cfg.DiskWaitBudget || d.Final.PeakMemoryInUse > cfg.Budget {
				t.Errorf("DiskInUse at most %d of %d in %d samples; final %+v", d.PeakDiskInUse, d.DiskBudget, d.Samples, d.Final)
			}
			if d.PeakInFlight <= cfg.DiskWaitBudget+cfg.Budget || d.PeakHeld <= 0 || d.PeakInFlightUploads > int64(cfg.Clients) {
				t.Errorf("in flight at most %d bytes in %d uploads, held at most %d: the tiny workload does not outgrow the budgets", d.PeakInFlight,
					d.PeakInFlightUploads, d.PeakHeld)
			}
			switch v.Name {
			case diskwaitReserve:
				// Each upload waits for all of its room before it writes:
				// nothing is refused, nothing retried.
				if res.Uploads != len(w.Uploads) || d.FirstTry != res.Uploads || d.Failed() != 0 || d.Reservations.Count != len(w.Uploads) {
					t.Errorf("reserve: %d of %d uploads, %d at first attempt, %d failed, %d reservations", res.Uploads, len(w.Uploads), d.FirstTry,
						d.Failed(), d.Reservations.Count)
				}
			case diskwaitWait:
				if res.Uploads != len(w.Uploads) || d.DiskWaitTime() <= 0 || d.Final.DiskWaitTime <= 0 {
					t.Errorf("wait: %d of %d uploads, waited %v", res.Uploads, len(w.Uploads), d.DiskWaitTime())
				}
			case diskwaitNoWait:
				if d.Refused == 0 || d.DiskWaitTime() != 0 || d.PeakWaiters != 0 || d.FirstRefused == "" {
					t.Errorf("nowait: %d refused (first %q), waited %v, %d waiters at most", d.Refused, d.FirstRefused, d.DiskWaitTime(), d.PeakWaiters)
				}
			}
		})
	}
	if _, err := runDiskWait(cfg, Job{Impl: spoolImpl}); err == nil {
		t.Error("diskwait ran the uploads' spool")
	}
}

// fakeDiskWait returns a diskwait run with made-up results: every upload
// completed in every variant, none refused with reservations, 408
// refusals retried with waiting, 361 failures at once without.
func fakeDiskWait() Run {
	cfg := defaultConfig()
	cfg.Scenario = "diskwait"
	final := func(wait time.Duration) spool.Stats {
		return spool.Stats{MemoryBudget: 64 << 20, PeakMemoryInUse: 64 << 20, DiskBudget: 256 << 20, DiskWaitTime: wait}
	}
	wait := &DiskWaitResult{Wait: true, DiskBudget: 256 << 20, Deadline: 5 * time.Minute, MaxRetries: 100, Backoff: 10 * time.Millisecond,
		Intact: 367, FirstTry: 250, Attempts: 775, Retries: 408, Refused: 408, WastedBytes: 2598455214,
		FailedWrites: Latency{Count: 408, P50: 0.005, P99: 3, P999: 20, Max: 21.1}, FirstRefused: "upload 15, attempt 1: refused",
		PeakInFlight: 1599875502, PeakInFlightUploads: 200, PeakHeld: 320 << 20, Samples: 2604, PeakWaiters: 106, PeakDiskInUse: 256 << 20,
		SpillBudgetErrors: 3432, Final: final(93160 * time.Millisecond)}
	reserve := &DiskWaitResult{Wait: true, Reserve: true, DiskBudget: 256 << 20, Deadline: 5 * time.Minute, MaxRetries: 100, Backoff: 10 * time.Millisecond,
		Intact: 367, FirstTry: 367, Attempts: 367, Reservations: Latency{Count: 367, P50: 0.002, P99: 900, P999: 1200, Max: 1250},
		PeakInFlight: 1200 << 20, PeakInFlightUploads: 200, PeakHeld: 300 << 20, Samples: 3000, PeakWaiters: 150, PeakDiskInUse: 256 << 20,
		Final: final(60 * time.Second)}
	nowait := &DiskWaitResult{DiskBudget: 256 << 20, Deadline: 5 * time.Minute, MaxRetries: 100, Backoff: 10 * time.Millisecond,
		Intact: 367, FirstTry: 260, Attempts: 728, Retries: 361, Refused: 361, WastedBytes: 2308544921,
		FailedWrites: Latency{Count: 361, P50: 0.005, P99: 0.5, P999: 1, Max: 1.19}, FirstRefused: "upload 95, attempt 1: spent",
		PeakInFlight: 1599875502, PeakInFlightUploads: 200, PeakHeld: 319 << 20, Samples: 1593, PeakDiskInUse: 256 << 20,
		SpillBudgetErrors: 51, Final: final(0)}
	result := func(v variant, d *DiskWaitResult, wall float64) Result {
		return Result{Scenario: "diskwait", Impl: v.Name, Label: v.Label, Clients: 200, Uploads: 367, WantUploads: 367, Bytes: 1614601982,
			WantBytes: 1614601982, WallSeconds: wall, DiskWait: d, Store: StoreStats{SpillErrors: d.SpillBudgetErrors},
			WriteLatency: Latency{Count: 129248, P50: 0.011, P99: 10.8, P999: 59.8, Max: 79.9}}
	}
	return Run{Scenario: "diskwait", Config: cfg, Results: []Result{result(diskwaitVariants[0], reserve, 2.5), result(diskwaitVariants[1], wait, 3.23),
		result(diskwaitVariants[2], nowait, 1.77)}}
}

// reportLines parses a report into its table rows, each split into its
// cells, and its target lines, by the text after the verdict.
func reportLines(t *testing.T, report string) (rows [][]string, targets map[string]string) {
	t.Helper()
	targets = make(map[string]string)
	var width int
	for _, line := range strings.Split(report, "\n") {
		switch {
		case strings.HasPrefix(line, "| "):
			if n := utf8.RuneCountInString(line); width == 0 || strings.HasPrefix(line, "| :") {
				width = n
			} else if n != width {
				t.Errorf("ragged table row %q", line)
			}
			var cells []string
			for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
				cells = append(cells, strings.TrimSpace(c))
			}
			rows = append(rows, cells)
		case strings.HasPrefix(line, "- "):
			verdict, text, ok := strings.Cut(line[2:], " ")
			if !ok {
				t.Errorf("bad target line %q", line)
			}
			targets[strings.TrimSpace(text)] = verdict
		default:
			width = 0
		}
	}
	return rows, targets
}

// row returns the row of rows whose first cell is first and whose number
// of cells is n, or fails.
func row(t *testing.T, rows [][]string, first string, n int) []string {
	t.Helper()
	for _, r := range rows {
		if r[0] == first && len(r) == n {
			return r
		}
	}
	t.Fatalf("no row %q of %d cells in %q", first, n, rows)
	return nil
}

// The diskwait report: the tables, each variant's row, and the targets,
// PASS, MISS or n/a.
func TestDiskWaitReport(t *testing.T) {
	run := fakeDiskWait()
	var b bytes.Buffer
	printDiskWaitReport(&b, run)
	out := b.String()
	rows, targets := reportLines(t, out)
	if got, want := row(t, rows, "wait (NewBufferContext)", 13), []string{"wait (NewBufferContext)", "367 of 367", "367", "250", "408", "408", "0", "0", "408", "0",
		"2.42 GiB", "3.23 s", "0.50"}; !reflect.DeepEqual(got, want) {
		t.Errorf("row %q, want %q", got, want)
	}
	if got, want := row(t, rows, "nowait (NewBuffer)", 11), []string{"nowait (NewBuffer)", "319.0 MiB", "0", "0 s", "256.0 MiB", "1.000x", "51", "64.0 MiB", "361",
		"5 µs", "1.19 ms"}; !reflect.DeepEqual(got, want) {
		t.Errorf("row %q, want %q", got, want)
	}
	if got := row(t, rows, "wait (NewBufferContext)", 11); got[2] != "106" || got[3] != "93.16 s" {
		t.Errorf("row %q", got)
	}
	row(t, rows, "nowait (NewBuffer)", 8) // the write latency
	if got, want := row(t, rows, "reserve (NewBufferContext, ReserveDisk)", 13), []string{"reserve (NewBufferContext, ReserveDisk)", "367 of 367", "367", "367", "0",
		"0", "0", "0", "0", "0", "0 B", "2.50 s", "0.65"}; !reflect.DeepEqual(got, want) {
		t.Errorf("row %q, want %q", got, want)
	}
	for _, want := range []string{"scenario diskwait: 367 uploads, 1.50 GiB", "a 64 MiB memory budget and a 256 MiB disk budget (-diskwait-budget)",
		"retried from its first byte after 10ms, up to 100 times", "a context that ends after 5m0s (-diskwait-deadline)",
		"at most: reserve: 200 uploads of 1.17 GiB in all; wait: 200 uploads of 1.49 GiB in all; nowait: 200 uploads of 1.49 GiB in all;",
		"reserve: 367 ReserveDisk calls waited p50 2 µs, p99 900.0 ms, max 1.25 s for their room", "(320 MiB in all)",
		"wait: first ErrDiskBudget: upload 15, attempt 1: refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the report:\n%s", want, out)
		}
	}
	wantTargets := map[string]string{
		"reserve: every upload completes intact at its first attempt, none refused: 367 of 367 uploads completed, 367 intact, 367 at their first attempt, 0 failed attempts":                                                                                                                               "PASS",
		"reserve: DiskInUse never above DiskBudget: at most 256.0 MiB of 256 MiB in 3,000 reads of Stats(), 0.0 MiB at the end":                                                                                                                                                                            "PASS",
		"wait: every upload completes and is intact: 367 of 367 uploads completed, 367 intact, with 408 refused attempts retried (250 uploads completed by their first attempt)":                                                                                                                           "PASS",
		"nowait: behaves as today: uploads refused at the disk budget fail at once with ErrDiskBudget: 361 attempts failed with ErrDiskBudget (their Writes returned in 1.19 ms at most), none waited: DiskWaitTime 0 s, DiskWaiters at most 0; 367 of 367 uploads completed (260 by their first attempt)": "PASS",
		"wait: DiskInUse never above DiskBudget: at most 256.0 MiB of 256 MiB in 2,604 reads of Stats(), 0.0 MiB at the end":                                                                                                                                                                               "PASS",
		"nowait: DiskInUse never above DiskBudget: at most 256.0 MiB of 256 MiB in 1,593 reads of Stats(), 0.0 MiB at the end":                                                                                                                                                                             "PASS",
	}
	if !reflect.DeepEqual(targets, wantTargets) {
		t.Errorf("targets %q, want %q", targets, wantTargets)
	}
	for _, r := range run.Results {
		if p := r.problem(); p != "" {
			t.Errorf("%s: problem %q", r.Impl, p)
		}
	}

	// Waiting gives 2 uploads up and lets DiskInUse pass the budget;
	// without waiting, a write waited and another failed otherwise.
	wr, nr := &run.Results[1], &run.Results[2]
	wr.Uploads, wr.Bytes, wr.DiskWait.Intact, wr.DiskWait.GaveUp, wr.DiskWait.GaveUpBytes = 365, wr.Bytes-1000, 365, 2, 1000
	wr.DiskWait.DeadlineHit, wr.DiskWait.PeakDiskInUse = 3, 256<<20+4096
	nr.DiskWait.Final.DiskWaitTime, nr.DiskWait.PeakWaiters, nr.DiskWait.Other, nr.Errors = time.Millisecond, 1, 1, 1
	b.Reset()
	printDiskWaitReport(&b, run)
	_, targets = reportLines(t, b.String())
	for text, verdict := range map[string]string{
		"wait: every upload completes and is intact: 365 of 367 uploads completed, 365 intact, with 408 refused attempts retried (250 uploads completed by their first attempt, 3 at the deadline, 2 uploads given up after 100 retries)":                                                                      "MISS",
		"nowait: behaves as today: uploads refused at the disk budget fail at once with ErrDiskBudget: 361 attempts failed with ErrDiskBudget (their Writes returned in 1.19 ms at most), none waited: DiskWaitTime 1.00 ms, DiskWaiters at most 1; 367 of 367 uploads completed (260 by their first attempt)": "MISS",
		"wait: DiskInUse never above DiskBudget: at most 256.0 MiB of 256 MiB in 2,604 reads of Stats(), 0.0 MiB at the end":                                                                                                                                                                                   "MISS",
	} {
		if targets[text] != verdict {
			t.Errorf("target %q: %q, want %s\n%s", text, targets[text], verdict, b.String())
		}
	}
	// Uploads given up and rollovers failed at the disk budget are what
	// the scenario measures; another failure is a failure of the run.
	if p := wr.problem(); p != "" {
		t.Errorf("wait: problem %q", p)
	}
	if p := nr.problem(); p == "" || !strings.Contains(b.String(), "| nowait (NewBuffer) (FAILED) ") {
		t.Errorf("nowait: problem %q\n%s", p, b.String())
	}
	wr.DiskWait.GaveUp = 1
	if p := wr.problem(); !strings.Contains(p, "365 of 366 uploads") {
		t.Errorf("wait: problem %q", p)
	}

	run.Results = nil
	b.Reset()
	printDiskWaitReport(&b, run)
	_, targets = reportLines(t, b.String())
	if len(targets) != 6 {
		t.Errorf("targets %q", targets)
	}
	for text, verdict := range targets {
		if verdict != "n/a" || !strings.HasSuffix(text, ": not run") {
			t.Errorf("target %q: %s", text, verdict)
		}
	}
}

// The parent runs both diskwait variants in child processes and prints
// the report.
func TestParentMainDiskWait(t *testing.T) {
	cfg := tinyConfig()
	cfg.TempDir = t.TempDir()
	cfg.Scenario = "diskwait"
	var out, errs bytes.Buffer
	if code := parentMain(cfg, &out, &errs); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errs.String())
	}
	rows, targets := reportLines(t, out.String())
	for _, v := range diskwaitVariants {
		row(t, rows, v.Label, 13)
		row(t, rows, v.Label, 11)
	}
	for _, want := range []string{"scenario diskwait: 48 uploads", "a 256 KiB memory budget and a 2 MiB disk budget", "Targets:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in the report:\n%s", want, out.String())
		}
	}
	if len(targets) != 6 || strings.Contains(out.String(), "n/a") || errs.Len() != 0 {
		t.Errorf("targets %q; report:\n%s\nstderr:\n%s", targets, out.String(), errs.String())
	}
	for text, verdict := range targets {
		if strings.Contains(text, "DiskInUse never above DiskBudget") && verdict != "PASS" {
			t.Errorf("%s %s", verdict, text)
		}
	}
}
