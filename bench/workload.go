package main

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The uploads scenario: cfg.Clients goroutines receive uploads of
// log-uniform random size from cfg.MinSize to cfg.MaxSize, each written in
// cfg.Piece-byte pieces with a runtime.Gosched after each (so the clients
// interleave like slow network peers), into a Sink of the implementation;
// then each upload is read back through the Sink, checksummed against the
// checksum computed while its bytes were generated, and closed. Each client
// takes the next upload from a shared queue and handles its uploads one
// after another.

// Upload is one upload of a workload. Its bytes are a pure function of
// Seed, so they need not be stored.
type Upload struct {
	Size int64
	Seed uint64
}

// Workload is the list of uploads of a run.
type Workload struct {
	Uploads []Upload
	Total   int64 // sum of the sizes
}

// newWorkload draws upload sizes from seed until their sum reaches total:
// the upload count is the smallest that does. Sizes are log-uniform in
// [minSize, maxSize].
func newWorkload(seed uint64, total, minSize, maxSize int64) Workload {
	rng := rand.New(rand.NewPCG(seed, 0x5eed_5b0b_5eed_5b0b))
	lo, hi := math.Log(float64(minSize)), math.Log(float64(maxSize))
	var w Workload
	for i := uint64(0); w.Total < total; i++ {
		size := int64(math.Round(math.Exp(lo + rng.Float64()*(hi-lo))))
		size = min(max(size, minSize), maxSize)
		w.Uploads = append(w.Uploads, Upload{Size: size, Seed: splitmix64(seed ^ (i+1)*0x9e3779b97f4a7c15)})
		w.Total += size
	}
	return w
}

// splitmix64 scrambles x; it never returns the same value for two inputs.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// gen generates an upload's bytes: a xorshift64 stream, 8 bytes a step.
// Filling pieces whose lengths are multiples of 8 (except the last) gives
// the same bytes as filling the whole at once; other lengths give other,
// equally deterministic bytes.
type gen struct{ s uint64 }

func newGen(seed uint64) gen {
	if seed == 0 {
		seed = 1 // xorshift is stuck at 0
	}
	return gen{s: seed}
}

func (g *gen) fill(p []byte) {
	s := g.s
	for len(p) >= 8 {
		s ^= s << 13
		s ^= s >> 7
		s ^= s << 17
		binary.LittleEndian.PutUint64(p, s)
		p = p[8:]
	}
	if len(p) > 0 {
		s ^= s << 13
		s ^= s >> 7
		s ^= s << 17
		var tail [8]byte
		binary.LittleEndian.PutUint64(tail[:], s)
		copy(p, tail[:])
	}
	g.s = s
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// uploadStats are the counters of runUploadsOn.
type uploadStats struct {
	uploads        atomic.Int64
	bytes          atomic.Int64 // bytes written and read back
	checksumErrors atomic.Int64 // uploads read back wrong (size or bytes)
	errors         atomic.Int64 // operations that failed
	firstErr       atomic.Pointer[string]

	mu        sync.Mutex
	latencies []time.Duration // of every Write, merged from the clients

	// onWrite, if not nil, is called by the clients after each Write
	// with the bytes it wrote. It is set before runUploadsOn.
	onWrite func(n int)
}

// gauge is a level that goes up and down, with the most it reached.
type gauge struct{ now, most atomic.Int64 }

func (g *gauge) add(n int64) {
	v := g.now.Add(n)
	for {
		m := g.most.Load()
		if v <= m || g.most.CompareAndSwap(m, v) {
			return
		}
	}
}

// Latency summarizes durations, in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

func summarize(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	at := func(q float64) float64 {
		return float64(d[int(q*float64(len(d)-1))]) / float64(time.Millisecond)
	}
	return Latency{Count: len(d), P50: at(0.5), P99: at(0.99), P999: at(0.999), Max: at(1)}
}

func (s *uploadStats) fail(format string, args ...any) {
	s.errors.Add(1)
	msg := fmt.Sprintf(format, args...)
	s.firstErr.CompareAndSwap(nil, &msg)
}

// runUploadsOn runs workload w against store with clients goroutines,
// counting into st, and returns its wall time.
//
// The latency of every Write goes into one array sized before the clients
// start (latencyLog): growing a slice per client, and merging them, were
// 5-9 MB of garbage that the collector, paced by spool's 64 MiB of live
// buffers, never ran to reclaim, and that counted as spool's RSS (about 5
// MiB of it) but not a temporary file's.
func runUploadsOn(store Store, w Workload, clients, piece int, st *uploadStats) time.Duration {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		log  = newLatencyLog(w, piece)
	)
	// Each client's piece and checksum are made before the clock starts,
	// and so is the collection that making them causes: made by the
	// clients as they started, they set a collection off while the first
	// clients wrote, and every implementation's writes that allocated
	// (spool's first writes to each buffer do) waited for it, 1-2 ms each
	// on 2 cores, in one run in 8 or so (execution traces): the p99.9 of
	// those runs measured the harness's start.
	bufs := make([][]byte, clients)
	sums := make([]hash32, clients)
	for i := range clients {
		bufs[i], sums[i] = make([]byte, piece), crc32.New(castagnoli)
	}
	runtime.GC()
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			buf, h := bufs[c], sums[c]
			for {
				i := next.Add(1) - 1
				if i >= int64(len(w.Uploads)) {
					return
				}
				upload(store, w.Uploads[i], int(i), buf, h, st, log)
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	st.mu.Lock()
	if st.latencies == nil {
		st.latencies = log.all()
	} else {
		st.latencies = append(st.latencies, log.all()...)
	}
	st.mu.Unlock()
	return wall
}

// latencyLog records the latencies of the Writes of a run into an array
// with room for one per piece of every upload, from any goroutine, without
// allocating; the few more that short writes would make go to extra.
type latencyLog struct {
	d     []time.Duration
	n     atomic.Int64
	mu    sync.Mutex
	extra []time.Duration
}

func newLatencyLog(w Workload, piece int) *latencyLog {
	var writes int64
	for _, u := range w.Uploads {
		writes += (u.Size + int64(piece) - 1) / int64(piece)
	}
	return &latencyLog{d: make([]time.Duration, writes)}
}

func (l *latencyLog) add(d time.Duration) {
	if i := l.n.Add(1) - 1; i < int64(len(l.d)) {
		l.d[i] = d
		return
	}
	l.mu.Lock()
	l.extra = append(l.extra, d)
	l.mu.Unlock()
}

// all returns the latencies recorded; the clients are done.
func (l *latencyLog) all() []time.Duration {
	return append(l.d[:min(l.n.Load(), int64(len(l.d)))], l.extra...)
}

// upload receives one upload into a new Sink of store, reads it back into
// h and checks it. It records the latency of each Write in log.
func upload(store Store, u Upload, idx int, buf []byte, h hash32, st *uploadStats, log *latencyLog) {
	sink, err := store.New()
	if err != nil {
		st.fail("upload %d: new: %v", idx, err)
		return
	}
	defer func() {
		if err := sink.Close(); err != nil {
			st.fail("upload %d: close: %v", idx, err)
		}
	}()
	g := newGen(u.Seed)
	var want uint32
	for off := int64(0); off < u.Size; {
		p := buf[:min(int64(len(buf)), u.Size-off)]
		g.fill(p)
		want = crc32.Update(want, castagnoli, p)
		t0 := time.Now()
		markWrite("b")
		n, err := sink.Write(p)
		markWrite("e")
		log.add(time.Since(t0))
		if st.onWrite != nil {
			st.onWrite(n)
		}
		off += int64(n)
		if err != nil {
			st.fail("upload %d: write at %d: %v", idx, off, err)
			return
		}
		runtime.Gosched()
	}
	h.Reset()
	n, err := sink.ReadBack(h)
	if err != nil {
		st.fail("upload %d: read back: %v", idx, err)
		return
	}
	if n != u.Size || h.Sum32() != want {
		st.checksumErrors.Add(1)
		msg := fmt.Sprintf("upload %d: read back %d bytes with crc %08x, want %d bytes with crc %08x", idx, n, h.Sum32(), u.Size, want)
		st.firstErr.CompareAndSwap(nil, &msg)
	}
	st.uploads.Add(1)
	st.bytes.Add(u.Size)
}

type hash32 interface {
	Write(p []byte) (int, error)
	Reset()
	Sum32() uint32
}

// runUploads is the run function of the uploads scenario.
func runUploads(cfg Config, job Job) (Result, error) {
	impl, ok := lookupImpl(job.Impl)
	if !ok {
		return Result{}, fmt.Errorf("unknown implementation %q", job.Impl)
	}
	w := newWorkload(cfg.Seed, cfg.Total, cfg.MinSize, cfg.MaxSize)
	store, err := impl.Open(cfg)
	if err != nil {
		return Result{}, fmt.Errorf("open %s: %w", impl.Name, err)
	}
	st := new(uploadStats)
	wall := runUploadsOn(store, w, cfg.Clients, cfg.Piece, st)
	ss := store.Stats() // after every operation has returned
	if err := store.Close(); err != nil {
		st.fail("close %s: %v", impl.Name, err)
	}
	return st.result("uploads", impl.Name, impl.Label, cfg.Clients, w, wall, ss), nil
}

// result returns the Result of a run of the uploads workload w by clients
// clients (the uploads, shrink and diskwait scenarios): what s counted,
// the wall time and the store's figures.
func (s *uploadStats) result(scenario, impl, label string, clients int, w Workload, wall time.Duration, ss StoreStats) Result {
	res := Result{
		Scenario:       scenario,
		Impl:           impl,
		Label:          label,
		Clients:        clients,
		Uploads:        int(s.uploads.Load()),
		WantUploads:    len(w.Uploads),
		Bytes:          s.bytes.Load(),
		WantBytes:      w.Total,
		WallSeconds:    wall.Seconds(),
		Store:          ss,
		ChecksumErrors: s.checksumErrors.Load(),
		Errors:         s.errors.Load(),
		WriteLatency:   summarize(s.latencies),
	}
	if p := s.firstErr.Load(); p != nil {
		res.FirstError = *p
	}
	return res
}
