package main

import (
	"container/heap"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/spoolkit/spool"
	"github.com/spoolkit/spool/internal/experiment"
)

// The cache scenario: spool's Manager used as a cache of blobs. cfg.Blobs
// blobs of log-uniform size from cfg.BlobMinSize to cfg.BlobMaxSize are
// written, each in cachePiece-byte pieces, into buffers of one Manager
// with a cfg.CacheBudget budget; then cfg.Reads reads, each a ReadAt of a
// whole blob into a reused buffer, pick their blob from a Zipf
// distribution whose ranks are mapped to blobs by a random permutation (so
// popularity is independent of size). Every run of one exponent reads the
// same sequence. The measure is the share of reads (and of bytes) that
// spool serves from memory, per eviction policy, each policy in its own
// child process.
//
// Next to the policies, the parent computes an offline greedy ceiling over
// the same read sequence (greedyCeiling), and the scan test (Job.Scan)
// runs the first exponent's reads with a flood of new cold blobs written,
// read once and closed through the middle third.

// cachePiece is the size of each Write of a blob, and the chunk size the
// ceiling assumes (spool's default ChunkSize, which the scenario uses).
const cachePiece = 64 << 10

// cacheBuckets is the number of equal slices of the reads that hits are
// counted in: the second half, and the thirds of the scan test, are unions
// of them.
const cacheBuckets = 60

// verifyEvery: every verifyEvery-th read is checksummed against the blob.
const verifyEvery = 97

// cacheVariant is an eviction policy of the cache scenario.
type cacheVariant struct {
	variant
	policy      spool.Policy
	ristretto   bool // experiment.RistrettoVictims
	noPromotion bool // Options.DisablePromotion
}

var cacheVariants = []cacheVariant{
	{variant: variant{Name: "largest", Label: "LargestFirst"}, policy: spool.LargestFirst},
	{variant: variant{Name: "lru", Label: "LeastRecentlyUsed"}, policy: spool.LeastRecentlyUsed},
	{variant: variant{Name: "lfu", Label: "LeastFrequentlyUsed"}, policy: spool.LeastFrequentlyUsed},
	{variant: variant{Name: "lfu-ristretto", Label: "LFU-ristretto"}, policy: spool.LeastFrequentlyUsed, ristretto: true},
	{variant: variant{Name: "lfu-nopromo", Label: "LFU, no promotion"}, policy: spool.LeastFrequentlyUsed, noPromotion: true},
}

func cacheVariantList() []variant {
	var vs []variant
	for _, v := range cacheVariants {
		vs = append(vs, v.variant)
	}
	return vs
}

func lookupCacheVariant(name string) (cacheVariant, bool) {
	for _, v := range cacheVariants {
		if v.Name == name {
			return v, true
		}
	}
	return cacheVariant{}, false
}

func (cfg Config) validateCache() error {
	switch {
	case cfg.CacheBudget < cachePiece:
		return fmt.Errorf("-cache-budget must be at least %s", formatSize(cachePiece))
	case cfg.Blobs <= 0 || cfg.Blobs > math.MaxInt32:
		return errors.New("-blobs must be positive")
	case cfg.BlobMinSize <= 0 || cfg.BlobMaxSize < cfg.BlobMinSize:
		return errors.New("need 0 < -blob-min-size <= -blob-max-size")
	case cfg.BlobMaxSize > 1<<40:
		return errors.New("-blob-max-size is too large")
	case cfg.Reads <= 0:
		return errors.New("-reads must be positive")
	case len(cfg.Zipf) == 0:
		return errors.New("-zipf needs at least one exponent")
	case cfg.ScanBlobs < 0:
		return errors.New("-scan-blobs must not be negative")
	case cfg.ScanSize <= 0 || cfg.ScanSize > 1<<40:
		return errors.New("-scan-size must be positive")
	}
	for _, s := range append([]float64{cfg.ChildZipf}, cfg.Zipf...) {
		if s < 0 || math.IsNaN(s) || math.IsInf(s, 0) {
			return fmt.Errorf("bad Zipf exponent %g: want a number >= 0", s)
		}
	}
	if cfg.Child != "" && cfg.Scenario == "cache" && cfg.ChildZipf == 0 {
		return errors.New("-child-zipf must be set for a cache child")
	}
	return nil
}

// cacheJobs runs every policy at every exponent, then the scan test for
// the policies of cfg.ScanImpls at the first exponent.
func cacheJobs(cfg Config, names []string) []Job {
	var jobs []Job
	for _, s := range cfg.Zipf {
		for _, n := range names {
			v, _ := lookupCacheVariant(n)
			jobs = append(jobs, Job{Impl: n, Label: v.Label, Zipf: s})
		}
	}
	if cfg.ScanBlobs > 0 {
		for _, n := range names {
			for _, sn := range cfg.ScanImpls {
				if sn == n {
					v, _ := lookupCacheVariant(n)
					jobs = append(jobs, Job{Impl: n, Label: v.Label, Zipf: cfg.Zipf[0], Scan: true})
				}
			}
		}
	}
	return jobs
}

// cacheWorkload is the blobs of the cache scenario. A blob's bytes are a
// pure function of its seed (see gen), so they need not be stored.
type cacheWorkload struct {
	Sizes   []int64
	Seeds   []uint64
	Total   int64   // sum of the sizes
	Chunked int64   // sum of the sizes rounded up to whole chunks
	ByRank  []int32 // ByRank[r] is the blob of popularity rank r (0: the most popular)
}

func newCacheWorkload(cfg Config) cacheWorkload {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xcac4e_b10b5))
	lo, hi := math.Log(float64(cfg.BlobMinSize)), math.Log(float64(cfg.BlobMaxSize))
	w := cacheWorkload{Sizes: make([]int64, cfg.Blobs), Seeds: make([]uint64, cfg.Blobs), ByRank: make([]int32, cfg.Blobs)}
	for i := range w.Sizes {
		size := int64(math.Round(math.Exp(lo + rng.Float64()*(hi-lo))))
		size = min(max(size, cfg.BlobMinSize), cfg.BlobMaxSize)
		w.Sizes[i] = size
		w.Seeds[i] = splitmix64(cfg.Seed ^ 0xb10b ^ uint64(i+1)*0x9e3779b97f4a7c15)
		w.Total += size
		w.Chunked += chunksOf(size) * cachePiece
	}
	for r, b := range rng.Perm(cfg.Blobs) {
		w.ByRank[r] = int32(b)
	}
	return w
}

// chunksOf is the number of cachePiece chunks that size bytes take.
func chunksOf(size int64) int64 { return (size + cachePiece - 1) / cachePiece }

// cacheReads returns the blob of each read at Zipf exponent s. Every
// exponent uses the same uniform random numbers.
func cacheReads(cfg Config, w cacheWorkload, s float64) []int32 {
	z := newZipf(len(w.Sizes), s)
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x2ead_5e9))
	reads := make([]int32, cfg.Reads)
	for k := range reads {
		reads[k] = w.ByRank[z.rank(rng.Float64())]
	}
	return reads
}

// zipf samples ranks 0..n-1 with probability proportional to 1/(rank+1)^s,
// by inverting the cumulative distribution with a binary search. Unlike
// math/rand/v2's Zipf, it works for every s >= 0, including s <= 1.
type zipf struct {
	cum []float64 // cum[k] = sum of 1/(j+1)^s for j <= k
}

func newZipf(n int, s float64) zipf {
	z := zipf{cum: make([]float64, n)}
	sum := 0.0
	for k := range n {
		sum += math.Pow(float64(k+1), -s)
		z.cum[k] = sum
	}
	return z
}

// rank maps u, uniform in [0, 1), to a rank.
func (z zipf) rank(u float64) int {
	x := u * z.cum[len(z.cum)-1]
	i := sort.SearchFloat64s(z.cum, x) // first cum[i] >= x
	if i < len(z.cum) && z.cum[i] == x {
		i++ // cum[i] must exceed x: rank i covers [cum[i-1], cum[i])
	}
	return min(i, len(z.cum)-1)
}

// prob returns the probability of rank k.
func (z zipf) prob(k int) float64 {
	p := z.cum[k]
	if k > 0 {
		p -= z.cum[k-1]
	}
	return p / z.cum[len(z.cum)-1]
}

// bucketOf returns the bucket of read k of n.
func bucketOf(k, n int) int { return int(int64(k) * cacheBuckets / int64(n)) }

// bucketStart returns the first read of bucket b of n reads.
func bucketStart(b, n int) int {
	return int((int64(b)*int64(n) + cacheBuckets - 1) / cacheBuckets)
}

// Window counts the reads of one bucket of the reads, or of a union of
// buckets: how many there were and how many spool served entirely from
// memory, and their bytes.
type Window struct {
	Reads    int64 `json:"reads"`
	Hits     int64 `json:"hits"`
	Bytes    int64 `json:"bytes"`
	HitBytes int64 `json:"hit_bytes"`
	// Promotions and rollovers that the Manager completed meanwhile.
	Promotions int64 `json:"promotions,omitempty"`
	Spills     int64 `json:"spills,omitempty"`
}

func (w *Window) add(o Window) {
	w.Reads += o.Reads
	w.Hits += o.Hits
	w.Bytes += o.Bytes
	w.HitBytes += o.HitBytes
	w.Promotions += o.Promotions
	w.Spills += o.Spills
}

// Ratio is the share of reads served from memory, ByteRatio of bytes.
func (w Window) Ratio() float64     { return ratio(w.Hits, w.Reads) }
func (w Window) ByteRatio() float64 { return ratio(w.HitBytes, w.Bytes) }

func ratio(a, b int64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

// span sums buckets [from, to).
func span(ws []Window, from, to int) Window {
	var w Window
	for _, b := range ws[from:min(to, len(ws))] {
		w.add(b)
	}
	return w
}

// CacheResult is what a child of the cache scenario measures.
type CacheResult struct {
	Policy    string  `json:"policy"`
	Zipf      float64 `json:"zipf"`
	Scan      bool    `json:"scan"`
	Blobs     int     `json:"blobs"`
	BlobBytes int64   `json:"blob_bytes"`
	Reads     int     `json:"reads"` // Zipf reads done

	WriteSeconds   float64 `json:"write_seconds"`
	ReadSeconds    float64 `json:"read_seconds"` // the read phase (with the scan, if any)
	ReadsPerSecond float64 `json:"reads_per_second"`

	// From the Stats deltas over the read phase: the Zipf reads and, in
	// a scan run, the scan's read-backs.
	StatsReads       int64    `json:"stats_reads"`
	StatsHitRatio    float64  `json:"stats_hit_ratio"`
	StatsByteRatio   float64  `json:"stats_byte_ratio"`
	Overall          Window   `json:"overall"`            // the Zipf reads
	SecondHalf       Window   `json:"second_half"`        // the Zipf reads of the second half
	Buckets          []Window `json:"buckets"`            // the Zipf reads in cacheBuckets slices
	Verified         int64    `json:"verified"`           // reads checksummed
	MeanMemoryInUse  int64    `json:"mean_memory_in_use"` // Stats().MemoryInUse averaged over the reads
	ScanBefore       Window   `json:"scan_before,omitzero"`
	ScanDuring       Window   `json:"scan_during,omitzero"`
	ScanAfter        Window   `json:"scan_after,omitzero"`
	ScanReadsFromMem int64    `json:"scan_reads_from_memory,omitzero"` // scan read-backs served from memory

	// Manager Stats after the write phase and at the end of the reads.
	AfterWrite spool.Stats `json:"after_write"`
	End        spool.Stats `json:"end"`
}

// scanPhases returns the bucket ranges of the scan test: before is the
// second half of the first third (the first half is warm-up), during the
// middle third, after the last third.
func scanPhases() (before, during, after [2]int) {
	return [2]int{cacheBuckets / 6, cacheBuckets / 3}, [2]int{cacheBuckets / 3, 2 * cacheBuckets / 3}, [2]int{2 * cacheBuckets / 3, cacheBuckets}
}

// runCache is the run function of the cache scenario: one policy, one
// exponent, with or without the scan.
func runCache(cfg Config, job Job) (Result, error) {
	v, ok := lookupCacheVariant(job.Impl)
	if !ok {
		return Result{}, fmt.Errorf("unknown cache implementation %q", job.Impl)
	}
	w := newCacheWorkload(cfg)
	reads := cacheReads(cfg, w, job.Zipf)

	// RistrettoVictims is read once, by NewManager.
	old := experiment.RistrettoVictims.Swap(v.ristretto)
	m, err := spool.NewManager(spool.Options{
		MemoryBudget:     cfg.CacheBudget,
		TempDir:          cfg.TempDir,
		Policy:           v.policy,
		DisablePromotion: v.noPromotion,
	})
	experiment.RistrettoVictims.Store(old)
	if err != nil {
		return Result{}, err
	}

	res := Result{Scenario: "cache", Impl: v.Name, Label: v.Label, Clients: 1}
	cr := &CacheResult{Policy: v.policy.String(), Zipf: job.Zipf, Scan: job.Scan, Blobs: len(w.Sizes), BlobBytes: w.Total, Buckets: make([]Window, cacheBuckets)}
	res.Cache = cr
	fail := func(format string, args ...any) {
		res.Errors++
		if res.FirstError == "" {
			res.FirstError = fmt.Sprintf(format, args...)
		}
	}
	bad := func(format string, args ...any) {
		res.ChecksumErrors++
		if res.FirstError == "" {
			res.FirstError = fmt.Sprintf(format, args...)
		}
	}

	// Write phase.
	piece := make([]byte, cachePiece)
	bufs := make([]*spool.Buffer, len(w.Sizes))
	want := make([]uint32, len(w.Sizes))
	start := time.Now()
	for i, size := range w.Sizes {
		b, err := m.NewBuffer()
		if err != nil {
			m.Close()
			return Result{}, fmt.Errorf("blob %d: new buffer: %w", i, err)
		}
		bufs[i] = b
		crc, err := writeBlob(b, w.Seeds[i], size, piece)
		if err != nil {
			fail("blob %d: %v", i, err)
		}
		want[i] = crc
	}
	cr.WriteSeconds = time.Since(start).Seconds()
	cr.AfterWrite = m.Stats()

	// Read phase.
	buf := make([]byte, max(cfg.BlobMaxSize, cfg.ScanSize))
	n := len(reads)
	scanAt := func(int) int { return n + 1 } // read before which scan blob j runs
	if job.Scan && cfg.ScanBlobs > 0 {
		_, during, _ := scanPhases()
		from, to := bucketStart(during[0], n), bucketStart(during[1], n)
		scanAt = func(j int) int { return from + int(int64(j)*int64(to-from)/int64(cfg.ScanBlobs)) }
	}
	scanned := 0
	memSum := 0.0
	start = time.Now()
	prev := cr.AfterWrite
	for k, b := range reads {
		for scanned < cfg.ScanBlobs && scanAt(scanned) == k {
			before := m.Stats()
			if err := scanBlob(m, cfg, scanned, buf, piece); err != nil {
				bad("scan blob %d: %v", scanned, err)
			}
			after := m.Stats()
			cr.ScanReadsFromMem += after.ReadsFromMemory - before.ReadsFromMemory
			scanned++
			prev = after
		}
		size := w.Sizes[b]
		got, err := bufs[b].ReadAt(buf[:size], 0)
		switch {
		case err != nil && !(errors.Is(err, io.EOF) && int64(got) == size):
			fail("read %d of blob %d: %v", k, b, err)
		case int64(got) != size:
			bad("read %d of blob %d: %d bytes, want %d", k, b, got, size)
		case k%verifyEvery == 0:
			cr.Verified++
			if sum := crc32.Checksum(buf[:got], castagnoli); sum != want[b] {
				bad("read %d of blob %d: crc %08x, want %08x", k, b, sum, want[b])
			}
		}
		cur := m.Stats()
		win := &cr.Buckets[bucketOf(k, n)]
		win.Reads++
		win.Bytes += int64(got)
		win.Hits += cur.ReadsFromMemory - prev.ReadsFromMemory
		win.HitBytes += cur.ReadBytesFromMemory - prev.ReadBytesFromMemory
		win.Promotions += cur.Promotions - prev.Promotions
		win.Spills += cur.Spills - prev.Spills
		memSum += float64(cur.MemoryInUse)
		prev = cur
	}
	for ; scanned < cfg.ScanBlobs && job.Scan; scanned++ { // only with very few reads
		if err := scanBlob(m, cfg, scanned, buf, piece); err != nil {
			bad("scan blob %d: %v", scanned, err)
		}
	}
	cr.ReadSeconds = time.Since(start).Seconds()
	cr.End = m.Stats()
	cr.Reads = n
	cr.MeanMemoryInUse = int64(memSum / float64(n))
	if cr.ReadSeconds > 0 {
		cr.ReadsPerSecond = float64(n) / cr.ReadSeconds
	}
	cr.StatsReads = cr.End.Reads - cr.AfterWrite.Reads
	// Not NaN, which JSON cannot encode: there is at least one read.
	cr.StatsHitRatio = ratio(cr.End.ReadsFromMemory-cr.AfterWrite.ReadsFromMemory, max(cr.StatsReads, 1))
	cr.StatsByteRatio = ratio(cr.End.ReadBytesFromMemory-cr.AfterWrite.ReadBytesFromMemory, max(cr.End.ReadBytes-cr.AfterWrite.ReadBytes, 1))
	cr.Overall = span(cr.Buckets, 0, cacheBuckets)
	cr.SecondHalf = span(cr.Buckets, cacheBuckets/2, cacheBuckets)
	if job.Scan {
		cr.ScanBefore, cr.ScanDuring, cr.ScanAfter = scanWindows(cr)
		if scanned != cfg.ScanBlobs {
			fail("%d of %d scan blobs ran", scanned, cfg.ScanBlobs)
		}
	}

	for i, b := range bufs {
		if err := b.Close(); err != nil {
			fail("close blob %d: %v", i, err)
		}
	}
	if err := m.Close(); err != nil {
		fail("close manager: %v", err)
	}
	st := cr.End
	res.WallSeconds = cr.WriteSeconds + cr.ReadSeconds
	res.Store = StoreStats{
		Budget:       st.MemoryBudget,
		Spills:       st.Spills,
		SpilledBytes: st.SpilledBytes,
		DirectBytes:  st.DiskWritten - st.SpilledBytes,
		DiskBytes:    st.DiskWritten,
		SpillErrors:  st.SpillErrors,
	}
	return res, nil
}

// writeBlob writes size bytes generated from seed to b in len(piece)-byte
// pieces, and returns their CRC-32C.
func writeBlob(b *spool.Buffer, seed uint64, size int64, piece []byte) (uint32, error) {
	g := newGen(seed)
	var crc uint32
	for off := int64(0); off < size; {
		p := piece[:min(int64(len(piece)), size-off)]
		g.fill(p)
		crc = crc32.Update(crc, castagnoli, p)
		n, err := b.Write(p)
		off += int64(n)
		if err != nil {
			return crc, fmt.Errorf("write at %d: %w", off, err)
		}
	}
	return crc, nil
}

// scanBlob is one blob of the scan: a new buffer of cfg.ScanSize bytes
// written in pieces, read back once whole into buf and checked, and closed,
// like an upload flowing through.
func scanBlob(m *spool.Manager, cfg Config, j int, buf, piece []byte) error {
	b, err := m.NewBuffer()
	if err != nil {
		return err
	}
	want, werr := writeBlob(b, splitmix64(cfg.Seed^0x5ca7^uint64(j+1)*0xbf58476d1ce4e5b9), cfg.ScanSize, piece)
	got, rerr := b.ReadAt(buf[:cfg.ScanSize], 0)
	cerr := b.Close()
	switch {
	case werr != nil:
		return werr
	case rerr != nil && !(errors.Is(rerr, io.EOF) && int64(got) == cfg.ScanSize):
		return rerr
	case int64(got) != cfg.ScanSize:
		return fmt.Errorf("read back %d bytes, want %d", got, cfg.ScanSize)
	case crc32.Checksum(buf[:got], castagnoli) != want:
		return errors.New("read back wrong bytes")
	}
	return cerr
}

func cacheProgress(r Result) string {
	c := r.Cache
	if c == nil {
		return ""
	}
	pct := func(f float64) string {
		if math.IsNaN(f) {
			return "–"
		}
		return fmt.Sprintf("%5.1f%%", 100*f)
	}
	s := fmt.Sprintf("%6.2f s, %s of reads from memory (2nd half %s), %6.0f reads/s",
		r.WallSeconds, pct(c.Overall.Ratio()), pct(c.SecondHalf.Ratio()), c.ReadsPerSecond)
	if c.Scan {
		s += fmt.Sprintf("; scan: before %s, during %s, after %s", pct(c.ScanBefore.Ratio()), pct(c.ScanDuring.Ratio()), pct(c.ScanAfter.Ratio()))
	}
	return s
}

// CacheRun is what the parent computes for the cache scenario.
type CacheRun struct {
	Blobs    int       `json:"blobs"`
	Bytes    int64     `json:"bytes"`         // of the blobs
	Chunked  int64     `json:"chunked_bytes"` // of the blobs in whole chunks
	Ceilings []Ceiling `json:"ceilings"`      // one per exponent
}

func prepareCache(cfg Config, run *Run) {
	w := newCacheWorkload(cfg)
	cr := &CacheRun{Blobs: len(w.Sizes), Bytes: w.Total, Chunked: w.Chunked}
	for _, s := range cfg.Zipf {
		reads := cacheReads(cfg, w, s)
		c := greedyCeiling(w.Sizes, cfg.CacheBudget, reads)
		c.Zipf = s
		c.TopShare = newZipf(len(w.Sizes), s).prob(0)
		c.Static, c.StaticSecondHalf, c.StaticExpected, c.StaticExact = staticOracle(w, cfg.CacheBudget, s, reads)
		cr.Ceilings = append(cr.Ceilings, c)
	}
	run.Cache = cr
}

// Ceiling is the outcome of greedyCeiling.
type Ceiling struct {
	Zipf       float64 `json:"zipf"`
	TopShare   float64 `json:"top_share"` // probability of the most popular blob
	Overall    Window  `json:"overall"`
	SecondHalf Window  `json:"second_half"`
	Admitted   int64   `json:"admitted"`
	Declined   int64   `json:"declined"`
	Evicted    int64   `json:"evicted"`
	Seconds    float64 `json:"seconds"`

	// The best fixed set over the same reads (staticOracle).
	Static           Window  `json:"static"`
	StaticSecondHalf Window  `json:"static_second_half"`
	StaticExpected   float64 `json:"static_expected"` // its expected hit ratio
	StaticExact      bool    `json:"static_exact"`    // found by an exact knapsack
}

// staticOracle returns the hits over reads, and over their second half,
// of the best fixed set by exact popularity, and that set's expected hit
// ratio: knowing each blob's probability at exponent s, the set of blobs
// that fits in capacity (in whole chunks) with the highest total
// probability, held for the whole read phase. exact reports whether the
// set was found by an exact 0/1 knapsack; for very large inputs it is
// instead filled greedily by probability per chunk.
//
// The reads are independent draws, so whatever a policy holds at a read,
// the read hits with probability at most that of the best set: no online
// policy, however clever, can expect a higher hit ratio than this set
// (a policy that knows the future, like greedyCeiling, can).
func staticOracle(w cacheWorkload, capacity int64, s float64, reads []int32) (overall, secondHalf Window, expected float64, exact bool) {
	z := newZipf(len(w.Sizes), s)
	capChunks := capacity / cachePiece
	in := make([]bool, len(w.Sizes))
	if n := int64(len(w.Sizes)); n*(capChunks+1) <= 64<<20 {
		exact = true
		// best[c]: the most probability in c chunks from the ranks so far;
		// take[r][c]: whether rank r is in the set that achieves it.
		best := make([]float64, capChunks+1)
		take := make([][]bool, n)
		for r := range take {
			take[r] = make([]bool, capChunks+1)
			p, c := z.prob(r), chunksOf(w.Sizes[w.ByRank[r]])
			for cap := capChunks; cap >= c; cap-- {
				if v := best[cap-c] + p; v > best[cap] {
					best[cap] = v
					take[r][cap] = true
				}
			}
		}
		for r, cap := n-1, capChunks; r >= 0; r-- {
			if take[r][cap] {
				in[w.ByRank[r]] = true
				cap -= chunksOf(w.Sizes[w.ByRank[r]])
			}
		}
	} else {
		ranks := make([]int, len(w.ByRank))
		for r := range ranks {
			ranks[r] = r
		}
		density := func(r int) float64 { return z.prob(r) / float64(chunksOf(w.Sizes[w.ByRank[r]])) }
		sort.SliceStable(ranks, func(i, j int) bool { return density(ranks[i]) > density(ranks[j]) })
		free := capChunks
		for _, r := range ranks {
			b := w.ByRank[r]
			if c := chunksOf(w.Sizes[b]); c <= free {
				in[b] = true
				free -= c
			}
		}
	}
	for r, b := range w.ByRank {
		if in[b] {
			expected += z.prob(r)
		}
	}
	for k, b := range reads {
		win := Window{Reads: 1, Bytes: w.Sizes[b]}
		if in[b] {
			win.Hits, win.HitBytes = 1, w.Sizes[b]
		}
		overall.add(win)
		if bucketOf(k, len(reads)) >= cacheBuckets/2 {
			secondHalf.add(win)
		}
	}
	return overall, secondHalf, expected, exact
}

// greedyCeiling simulates, offline, a cache of capacity bytes (rounded
// down to whole chunks) in which blob b takes chunksOf(sizes[b]) chunks,
// over the write phase (blob 0, 1, ... offered in turn, not counted) and
// then reads. On a miss it admits the blob, evicting until it fits the
// resident blob whose next use is farthest weighted by size — the largest
// (next use − now) × chunks, a blob never used again first — unless that
// would evict a blob whose weighted next use is no farther than the
// newcomer's own: then it declines the newcomer and evicts nothing.
//
// This is Belady's farthest-next-use rule made size-aware: a good
// approximation of the best any policy could do knowing the future, not
// the true optimum (which is NP-hard with sizes), so a policy may beat it
// slightly.
//
// Blobs with the same chunk count are ordered among themselves by next
// use alone, so each chunk count keeps a max-heap of its resident blobs by
// next use, and a victim is the best of the heap tops: O(log blobs +
// distinct chunk counts) per eviction, at most 64 counts for 4 MiB blobs
// in 64 KiB chunks.
func greedyCeiling(sizes []int64, capacity int64, reads []int32) Ceiling {
	start := time.Now()
	const never = math.MaxInt64
	nb, nr := len(sizes), len(reads)
	total := nb + nr
	blobAt := func(t int) int32 {
		if t < nb {
			return int32(t)
		}
		return reads[t-nb]
	}
	// next[t] is the time of the next access to the blob of time t.
	next := make([]int64, total)
	last := make([]int64, nb)
	for i := range last {
		last[i] = never
	}
	for t := total - 1; t >= 0; t-- {
		b := blobAt(t)
		next[t] = last[b]
		last[b] = int64(t)
	}

	classes := make(map[int64]*ceilHeap)
	var list []*ceilHeap
	classOf := func(chunks int64) *ceilHeap {
		h := classes[chunks]
		if h == nil {
			h = &ceilHeap{chunks: chunks}
			classes[chunks] = h
			list = append(list, h)
		}
		return h
	}
	resident := make([]*ceilEntry, nb)
	capChunks := capacity / cachePiece
	free := capChunks
	var c Ceiling
	var popped []*ceilEntry
	for t := range total {
		b := blobAt(t)
		if t >= nb {
			k := t - nb
			win := Window{Reads: 1, Bytes: sizes[b]}
			if resident[b] != nil {
				win.Hits, win.HitBytes = 1, sizes[b]
			}
			c.Overall.add(win)
			if bucketOf(k, nr) >= cacheBuckets/2 {
				c.SecondHalf.add(win)
			}
		}
		if e := resident[b]; e != nil {
			e.next = next[t]
			heap.Fix(classOf(e.chunks), e.idx)
			continue
		}
		need := chunksOf(sizes[b])
		if need > capChunks || next[t] == never {
			c.Declined++
			continue
		}
		mine := ceilKey{dist: (next[t] - int64(t)) * need, chunks: need}
		freed := int64(0)
		popped = popped[:0]
		declined := false
		for free+freed < need {
			var best *ceilHeap
			var bestKey ceilKey
			for _, h := range list {
				if h.Len() == 0 {
					continue
				}
				k := h.items[0].key(int64(t))
				if best == nil || k.greater(bestKey) {
					best, bestKey = h, k
				}
			}
			if best == nil || !bestKey.greater(mine) {
				declined = true
				break
			}
			popped = append(popped, heap.Pop(best).(*ceilEntry))
			freed += best.chunks
		}
		if declined {
			for _, e := range popped {
				heap.Push(classOf(e.chunks), e)
			}
			c.Declined++
			continue
		}
		for _, e := range popped {
			resident[e.blob] = nil
			c.Evicted++
		}
		free += freed - need
		e := &ceilEntry{blob: b, next: next[t], chunks: need}
		heap.Push(classOf(need), e)
		resident[b] = e
		c.Admitted++
	}
	c.Seconds = time.Since(start).Seconds()
	return c
}

// ceilEntry is a resident blob of greedyCeiling.
type ceilEntry struct {
	blob   int32
	next   int64 // time of its next use, or math.MaxInt64
	chunks int64
	idx    int // in its ceilHeap
}

// ceilKey is how much a resident blob is worth evicting: the greater, the
// sooner.
type ceilKey struct {
	never  bool  // not used again
	dist   int64 // (next use - now) × chunks, if not never
	chunks int64
}

func (e *ceilEntry) key(now int64) ceilKey {
	if e.next == math.MaxInt64 {
		return ceilKey{never: true, chunks: e.chunks}
	}
	return ceilKey{dist: (e.next - now) * e.chunks, chunks: e.chunks}
}

// greater reports whether k should be evicted before o: never used again
// first, then the farthest weighted next use, then the larger.
func (k ceilKey) greater(o ceilKey) bool {
	if k.never != o.never {
		return k.never
	}
	if !k.never && k.dist != o.dist {
		return k.dist > o.dist
	}
	return k.chunks > o.chunks
}

// ceilHeap is a max-heap by next use of the resident blobs of one chunk
// count.
type ceilHeap struct {
	chunks int64
	items  []*ceilEntry
}

func (h *ceilHeap) Len() int           { return len(h.items) }
func (h *ceilHeap) Less(i, j int) bool { return h.items[i].next > h.items[j].next }
func (h *ceilHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].idx = i
	h.items[j].idx = j
}
func (h *ceilHeap) Push(x any) {
	e := x.(*ceilEntry)
	e.idx = len(h.items)
	h.items = append(h.items, e)
}
func (h *ceilHeap) Pop() any {
	e := h.items[len(h.items)-1]
	h.items[len(h.items)-1] = nil
	h.items = h.items[:len(h.items)-1]
	return e
}
