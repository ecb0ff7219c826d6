package main

import (
	"container/list"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/spoolkit/spool"
)

// The blobs scenario: many small blobs, where fixed per-buffer costs
// dominate. cfg.BlobsCount blobs of log-uniform size from cfg.BlobsMinSize
// to cfg.BlobsMaxSize (fixed seed) are written, each in one Write, into a
// store capped at cfg.BlobsBudget bytes of memory; then cfg.BlobsReads
// reads of whole blobs pick their blob from a Zipf distribution (exponent
// cfg.BlobsZipf) whose ranks are mapped to blobs by a random permutation,
// so popularity is independent of size. Every read is checked against the
// blob's CRC-32C. Two stores, each in its own child process:
//
//   - spool: one Manager with the budget and the LeastFrequentlyUsed
//     policy, one Buffer per blob. LeastFrequentlyUsed is the policy for a
//     cache: it keeps the blobs read most often per byte in memory and
//     brings spilled blobs that turn hot back (promotion), where
//     LeastRecentlyUsed would let any burst of one-off reads displace the
//     hot set and LargestFirst ignores popularity (see the cache
//     scenario). Spilled blobs stay readable from disk: nothing is lost.
//   - map: what a user writes by hand, a map[int][]byte with a
//     container/list in least-recently-used order, capped at the same
//     bytes (the lengths of the slices): an insert past the cap drops the
//     least recently used blobs. A dropped blob is gone, so a read that
//     misses fetches it again from its origin (here: generates it from its
//     seed) and inserts it, dropping others, as a read-through cache does.
//
// The measures: the efficiency of spool's budget, data held in memory (the
// sizes of the blobs whose buffers are not OnDisk) ÷ Stats().MemoryInUse,
// after the writes and at the end of the reads; the blobs in memory; the
// hit ratio (Stats().ReadsFromMemory / Reads over the reads, or the map's
// hits); and the peak RSS of each child above its baseline.
//
// The spool child runs under a limit of cfg.BlobsFDLimit open files (256
// by default), soft and hard, set before its Manager is created
// (setFDLimit): most of its blobs spill, and spool's spill arena keeps
// them all in a few shared segment files, so the number of spilled
// buffers must not matter. The target: the segment files open
// (Stats().SpillFiles, at most over the run) stay <= 4 × GOMAXPROCS + 4,
// and no write fails. The child itself needs few descriptors besides: its
// standard streams, the runtime's poller (epoll, eventfd) and the cgroup
// CPU-limit files it keeps open (Go 1.25+), /proc/self/status for the RSS
// sampler, and with -profile the CPU profile (open over the run) and one
// heap profile at a time: 10 or so; the report shows the most it had open
// (14 in a default run, with 4 spill files). The limit
// is set only in a child process, as it cannot be raised again (a test
// running runBlobs in process keeps its own). The map child, and spool's
// with -blobs-fd-limit 0, raise their soft limit to the hard limit
// instead (raiseFDLimit), as before. A write that fails for want of a
// descriptor is counted as a write error: the run fails, and the report
// says why.

// blobsMinFDLimit is the least -blobs-fd-limit: room for the child's own
// descriptors (see above) and a few spill files.
const blobsMinFDLimit = 32

// blobsVariants are the stores of the blobs scenario.
var blobsVariants = []variant{
	{Name: spoolImpl, Label: "spool (LeastFrequentlyUsed)"},
	{Name: "map", Label: "map of []byte, LRU"},
}

func (cfg Config) validateBlobs() error {
	switch {
	case cfg.BlobsCount <= 0 || cfg.BlobsCount > math.MaxInt32:
		return errors.New("-blobs-count must be positive")
	case cfg.BlobsMinSize <= 0 || cfg.BlobsMaxSize < cfg.BlobsMinSize:
		return errors.New("need 0 < -blobs-min-size <= -blobs-max-size")
	case cfg.BlobsMaxSize > 1<<30:
		return errors.New("-blobs-max-size must be at most 1 GiB")
	case cfg.BlobsBudget < spool.DefaultChunkSize:
		return fmt.Errorf("-blobs-budget must be at least %s", formatSize(spool.DefaultChunkSize))
	case cfg.BlobsReads <= 0:
		return errors.New("-blobs-reads must be positive")
	case cfg.BlobsZipf < 0 || math.IsNaN(cfg.BlobsZipf) || math.IsInf(cfg.BlobsZipf, 0):
		return fmt.Errorf("bad -blobs-zipf %g: want a number >= 0", cfg.BlobsZipf)
	case cfg.BlobsFDLimit != 0 && (cfg.BlobsFDLimit < blobsMinFDLimit || cfg.BlobsFDLimit > 1<<30):
		return fmt.Errorf("bad -blobs-fd-limit %d: want 0, or %d to 2^30", cfg.BlobsFDLimit, blobsMinFDLimit)
	}
	return nil
}

// blobsWorkload is the blobs of the scenario and the blob of each read.
type blobsWorkload struct {
	Sizes []int64
	Seeds []uint64
	Total int64
	Reads []int32
}

func newBlobsWorkload(cfg Config) blobsWorkload {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xb10b5_5ca1e))
	lo, hi := math.Log(float64(cfg.BlobsMinSize)), math.Log(float64(cfg.BlobsMaxSize))
	w := blobsWorkload{Sizes: make([]int64, cfg.BlobsCount), Seeds: make([]uint64, cfg.BlobsCount), Reads: make([]int32, cfg.BlobsReads)}
	for i := range w.Sizes {
		size := int64(math.Round(math.Exp(lo + rng.Float64()*(hi-lo))))
		w.Sizes[i] = min(max(size, cfg.BlobsMinSize), cfg.BlobsMaxSize)
		w.Seeds[i] = splitmix64(cfg.Seed ^ 0xb10b5 ^ uint64(i+1)*0x9e3779b97f4a7c15)
		w.Total += w.Sizes[i]
	}
	byRank := rng.Perm(cfg.BlobsCount)
	z := newZipf(cfg.BlobsCount, cfg.BlobsZipf)
	for k := range w.Reads {
		w.Reads[k] = int32(byRank[z.rank(rng.Float64())])
	}
	return w
}

// BlobsResult is what a child of the blobs scenario measures.
type BlobsResult struct {
	Blobs     int   `json:"blobs"`
	BlobBytes int64 `json:"blob_bytes"`
	Budget    int64 `json:"budget"` // spool's enforced budget, or the map's cap

	WriteSeconds float64 `json:"write_seconds"`
	ReadSeconds  float64 `json:"read_seconds"`

	AfterWrite BlobsPoint `json:"after_write"`
	End        BlobsPoint `json:"end"`

	Reads      Window   `json:"reads"`       // all the reads
	SecondHalf Window   `json:"second_half"` // the reads of the second half
	Buckets    []Window `json:"buckets"`     // the reads in cacheBuckets slices

	// Blobs whose write failed (they are not read), the reads of those
	// blobs, and the first such error.
	WriteErrors     int64  `json:"write_errors"`
	LostReads       int64  `json:"lost_reads"`
	FirstWriteError string `json:"first_write_error,omitempty"`
	// The soft and hard limits on open files of the child, after
	// setFDLimit (0: unknown); FDLimit is the limit it set (spool's child,
	// cfg.BlobsFDLimit), 0 if it only raised the soft limit.
	FDSoft  uint64 `json:"fd_soft"`
	FDHard  uint64 `json:"fd_hard"`
	FDLimit uint64 `json:"fd_limit,omitempty"`
	// The most, over the samples (after each 1/blobsSamples of the writes
	// and of the reads) and at the end of each phase, of spool's
	// Stats().SpillFiles and BuffersOnDisk and of the descriptors the
	// child had open (-1: unknown); and the child's GOMAXPROCS.
	MaxSpillFiles    int `json:"max_spill_files"`
	MaxBuffersOnDisk int `json:"max_buffers_on_disk"`
	MaxFDs           int `json:"max_fds"`
	GOMAXPROCS       int `json:"gomaxprocs"`

	// spool's Stats after the writes and at the end (zero for the map).
	StatsAfterWrite spool.Stats `json:"stats_after_write"`
	StatsEnd        spool.Stats `json:"stats_end"`

	// Over the run, for the plot.
	Samples []BlobsPoint `json:"samples"`
}

// BlobsPoint is the state of a store at a moment: what it holds in memory.
type BlobsPoint struct {
	Seconds float64 `json:"t"` // since the start of the workload
	// Blobs in memory (spool: not OnDisk), and their bytes.
	InMemory int   `json:"in_memory"`
	Data     int64 `json:"data"`
	// spool's Stats().MemoryInUse, and its read windows; 0 for the map.
	MemoryInUse int64 `json:"memory_in_use"`
	ReadWindows int   `json:"read_windows"`
	// spool's Stats().SpillFiles and BuffersOnDisk; 0 for the map.
	SpillFiles    int `json:"spill_files,omitempty"`
	BuffersOnDisk int `json:"buffers_on_disk,omitempty"`
	// Descriptors the child had open (-1: unknown).
	FDs int `json:"fds"`
}

// Efficiency is data held in memory ÷ budget memory in use, or NaN.
func (p BlobsPoint) Efficiency() float64 { return ratio(p.Data, p.MemoryInUse) }

// blobsSamples is about how many points runBlobs samples in each phase.
const blobsSamples = 50

// blobStore is what runBlobs runs against: spool or the map.
type blobStore interface {
	// put stores blob i.
	put(i int, p []byte) error
	// get reads blob i whole into p (len(p) is its size) and reports
	// whether it came from memory. A blob the store dropped is fetched
	// again with fetch, and stored.
	get(i int, p []byte, fetch func([]byte)) (hit bool, err error)
	// point returns what the store holds in memory now.
	point() BlobsPoint
	close() error
}

// runBlobs is the run function of the blobs scenario.
func runBlobs(cfg Config, job Job) (Result, error) {
	w := newBlobsWorkload(cfg)
	br := &BlobsResult{Blobs: len(w.Sizes), BlobBytes: w.Total, Buckets: make([]Window, cacheBuckets), GOMAXPROCS: runtime.GOMAXPROCS(0), MaxFDs: -1}
	var err error
	if job.Impl == spoolImpl && cfg.BlobsFDLimit > 0 && cfg.Child != "" {
		br.FDSoft, br.FDHard, err = setFDLimit(uint64(cfg.BlobsFDLimit))
		if err != nil {
			return Result{}, fmt.Errorf("limit open files to %d: %w", cfg.BlobsFDLimit, err)
		}
		br.FDLimit = uint64(cfg.BlobsFDLimit)
	} else {
		br.FDSoft, br.FDHard, _ = raiseFDLimit()
	}
	var (
		store blobStore
		sp    *spoolBlobs
	)
	switch job.Impl {
	case spoolImpl:
		m, err := spool.NewManager(spool.Options{MemoryBudget: cfg.BlobsBudget, TempDir: cfg.TempDir, Policy: spool.LeastFrequentlyUsed})
		if err != nil {
			return Result{}, err
		}
		sp = &spoolBlobs{m: m, bufs: make([]*spool.Buffer, len(w.Sizes)), sizes: w.Sizes}
		store = sp
		br.Budget = m.Stats().MemoryBudget
	case "map":
		store = newLRUMap(cfg.BlobsBudget)
		br.Budget = cfg.BlobsBudget
	default:
		return Result{}, fmt.Errorf("unknown blobs implementation %q", job.Impl)
	}
	res := Result{Scenario: "blobs", Impl: job.Impl, Label: job.Label, Clients: 1, WantUploads: len(w.Sizes), WantBytes: w.Total, Blobs: br}
	fail := func(format string, args ...any) {
		res.Errors++
		if res.FirstError == "" {
			res.FirstError = fmt.Sprintf(format, args...)
		}
	}
	start := time.Now()
	// at returns what the store holds now, and notes the most spill
	// files, buffers on disk and descriptors seen.
	at := func() BlobsPoint {
		p := store.point()
		p.Seconds = time.Since(start).Seconds()
		p.FDs = openFDs()
		br.MaxSpillFiles = max(br.MaxSpillFiles, p.SpillFiles)
		br.MaxBuffersOnDisk = max(br.MaxBuffersOnDisk, p.BuffersOnDisk)
		br.MaxFDs = max(br.MaxFDs, p.FDs)
		return p
	}
	sample := func() { br.Samples = append(br.Samples, at()) }

	// Write phase: each blob in one Write.
	buf := make([]byte, cfg.BlobsMaxSize)
	want := make([]uint32, len(w.Sizes))
	failed := make([]bool, len(w.Sizes))
	every := max(1, len(w.Sizes)/blobsSamples)
	sample()
	for i, size := range w.Sizes {
		p := buf[:size]
		g := newGen(w.Seeds[i])
		g.fill(p)
		want[i] = crc32.Checksum(p, castagnoli)
		if err := store.put(i, p); err != nil {
			failed[i] = true
			br.WriteErrors++
			if br.FirstWriteError == "" {
				br.FirstWriteError = fmt.Sprintf("blob %d (%d bytes): %v", i, size, err)
			}
		} else {
			res.Uploads++
			res.Bytes += size
		}
		if (i+1)%every == 0 {
			sample()
		}
	}
	if br.WriteErrors > 0 {
		fail("%d of %d blob writes failed; first: %s", br.WriteErrors, len(w.Sizes), br.FirstWriteError)
	}
	br.WriteSeconds = time.Since(start).Seconds()
	br.AfterWrite = at()
	if sp != nil {
		br.StatsAfterWrite = sp.m.Stats()
	}

	// Read phase.
	readStart := time.Now()
	n := len(w.Reads)
	every = max(1, n/blobsSamples)
	for k, b := range w.Reads {
		win := &br.Buckets[bucketOf(k, n)]
		if failed[b] {
			br.LostReads++
			continue
		}
		p := buf[:w.Sizes[b]]
		hit, err := store.get(int(b), p, func(q []byte) {
			g := newGen(w.Seeds[b])
			g.fill(q)
		})
		switch {
		case err != nil:
			fail("read %d of blob %d: %v", k, b, err)
		case crc32.Checksum(p, castagnoli) != want[b]:
			res.ChecksumErrors++
			if res.FirstError == "" {
				res.FirstError = fmt.Sprintf("read %d of blob %d: wrong bytes", k, b)
			}
		}
		win.Reads++
		win.Bytes += int64(len(p))
		if hit {
			win.Hits++
			win.HitBytes += int64(len(p))
		}
		if (k+1)%every == 0 {
			sample()
		}
	}
	br.ReadSeconds = time.Since(readStart).Seconds()
	br.End = at()
	br.Reads = span(br.Buckets, 0, cacheBuckets)
	br.SecondHalf = span(br.Buckets, cacheBuckets/2, cacheBuckets)
	if sp != nil {
		br.StatsEnd = sp.m.Stats()
		st := br.StatsEnd
		// One more observation: the promoter may have moved buffers
		// since the last sample.
		br.MaxSpillFiles = max(br.MaxSpillFiles, st.SpillFiles)
		br.MaxBuffersOnDisk = max(br.MaxBuffersOnDisk, st.BuffersOnDisk)
		res.Store = spoolStoreStats(st)
	}
	res.WallSeconds = br.WriteSeconds + br.ReadSeconds
	if err := store.close(); err != nil {
		fail("close: %v", err)
	}
	return res, nil
}

// spoolBlobs is the spool store of the blobs scenario: a Buffer per blob.
type spoolBlobs struct {
	m     *spool.Manager
	bufs  []*spool.Buffer // nil: not written, or its write failed
	sizes []int64
}

func (s *spoolBlobs) put(i int, p []byte) error {
	b, err := s.m.NewBuffer()
	if err != nil {
		return err
	}
	if _, err := b.Write(p); err != nil {
		if cerr := b.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return err
	}
	s.bufs[i] = b
	return nil
}

// get counts a read as a hit if spool served it from memory, by the
// Manager's counter: the store is used by one goroutine.
func (s *spoolBlobs) get(i int, p []byte, _ func([]byte)) (bool, error) {
	before := s.m.Stats().ReadsFromMemory
	n, err := s.bufs[i].ReadAt(p, 0)
	if errors.Is(err, io.EOF) && n == len(p) {
		err = nil
	}
	if err == nil && n != len(p) {
		err = fmt.Errorf("read %d bytes of %d", n, len(p))
	}
	return s.m.Stats().ReadsFromMemory > before, err
}

func (s *spoolBlobs) point() BlobsPoint {
	st := s.m.Stats()
	p := BlobsPoint{MemoryInUse: st.MemoryInUse, ReadWindows: st.ReadWindows, SpillFiles: st.SpillFiles, BuffersOnDisk: st.BuffersOnDisk}
	for i, b := range s.bufs {
		if b != nil && !b.OnDisk() {
			p.InMemory++
			p.Data += s.sizes[i]
		}
	}
	return p
}

func (s *spoolBlobs) close() error {
	var errs []error
	for _, b := range s.bufs {
		if b != nil {
			if err := b.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := s.m.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// lruMap is the map baseline: blobs in a map, in least-recently-used
// order in a list, the total of their lengths capped.
type lruMap struct {
	cap, bytes int64
	items      map[int]*list.Element // of *lruEntry
	order      *list.List            // front: the most recently used
}

type lruEntry struct {
	key  int
	data []byte
}

func newLRUMap(capacity int64) *lruMap {
	return &lruMap{cap: capacity, items: make(map[int]*list.Element), order: list.New()}
}

// put stores a copy of p as blob i and drops the least recently used blobs
// while the total passes the cap. A blob larger than the cap is not kept.
func (m *lruMap) put(i int, p []byte) error {
	if e, ok := m.items[i]; ok {
		m.bytes -= int64(len(e.Value.(*lruEntry).data))
		m.order.Remove(e)
		delete(m.items, i)
	}
	if int64(len(p)) > m.cap {
		return nil
	}
	data := make([]byte, len(p))
	copy(data, p)
	m.items[i] = m.order.PushFront(&lruEntry{key: i, data: data})
	m.bytes += int64(len(data))
	for m.bytes > m.cap {
		e := m.order.Back()
		old := e.Value.(*lruEntry)
		m.order.Remove(e)
		delete(m.items, old.key)
		m.bytes -= int64(len(old.data))
	}
	return nil
}

func (m *lruMap) get(i int, p []byte, fetch func([]byte)) (bool, error) {
	if e, ok := m.items[i]; ok {
		m.order.MoveToFront(e)
		copy(p, e.Value.(*lruEntry).data)
		return true, nil
	}
	fetch(p)
	return false, m.put(i, p)
}

func (m *lruMap) point() BlobsPoint {
	return BlobsPoint{InMemory: len(m.items), Data: m.bytes}
}

func (m *lruMap) close() error {
	m.items, m.order, m.bytes = nil, nil, 0
	return nil
}

func blobsProgress(r Result) string {
	b := r.Blobs
	if b == nil {
		return ""
	}
	s := fmt.Sprintf("%.1f s, hit ratio %.1f%%, peak RSS %s", r.WallSeconds, 100*b.Reads.Ratio(), rssCell(r))
	if r.Impl == spoolImpl {
		s += fmt.Sprintf(", efficiency %.2f", b.AfterWrite.Efficiency())
	}
	return s
}
