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
)

// The cache scenario: spool's Manager used as a cache of blobs. cfg.Blobs
// blobs of log-uniform size from cfg.BlobMinSize to cfg.BlobMaxSize are
// written, each in cachePiece-byte pieces, into buffers of one Manager
// with a cfg.CacheBudget budget; then cfg.Reads reads pick their blob from
// a Zipf distribution whose ranks are mapped to blobs by a random
// permutation (so popularity is independent of size). Every run of one
// exponent reads the same sequence. The measure is the share of reads
// (and of bytes) that spool serves from memory, per eviction policy, each
// policy in its own child process.
//
// Two kinds of reads (Job.Small):
//   - whole-blob reads: each read is a ReadAt of the whole blob into a
//     reused buffer, as a cache handing out whole objects does;
//   - small reads (the first exponent only, and only if cfg.SmallRead is
//     not 0): each read is a ReadAt of cfg.SmallRead bytes at an offset
//     drawn uniformly from the blob's cfg.SmallRead-aligned pages (the
//     last page may be shorter), as a caching layer serving HTTP Range
//     requests sees them: media seeking, resumed downloads and page reads
//     land anywhere in an object, not only at its start. The blobs and
//     their popularity are the same, so only the bytes read change.
//
// Next to the policies, the parent computes two offline ceilings over the
// same read sequence (greedyCeiling and staticOracle), charging each blob
// what spool charges for it in memory, as measured with a scratch Manager
// (measureCharges); and the scan test (Job.Scan) runs the first exponent's
// whole-blob reads with a flood of new cold blobs written, read once and
// closed through the middle third.

// cachePiece is the size of each Write of a blob: spool's default
// ChunkSize, which the scenario uses.
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
	noPromotion bool // Options.DisablePromotion
}

var cacheVariants = []cacheVariant{
	{variant: variant{Name: "largest", Label: "LargestFirst"}, policy: spool.LargestFirst},
	{variant: variant{Name: "lru", Label: "LeastRecentlyUsed"}, policy: spool.LeastRecentlyUsed},
	{variant: variant{Name: "lfu", Label: "LeastFrequentlyUsed"}, policy: spool.LeastFrequentlyUsed},
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
	case cfg.SmallRead < 0 || cfg.SmallRead > 1<<30:
		return errors.New("-small-read must be from 0 to 1 GiB")
	case cfg.ChildSmall && cfg.SmallRead == 0:
		return errors.New("a small-read child needs -small-read")
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

// cacheJobs runs every policy at every exponent with whole-blob reads,
// then with small reads at the first exponent (if cfg.SmallRead is set),
// then the scan test for the policies of cfg.ScanImpls at the first
// exponent.
func cacheJobs(cfg Config, names []string) []Job {
	var jobs []Job
	for _, s := range cfg.Zipf {
		for _, n := range names {
			v, _ := lookupCacheVariant(n)
			jobs = append(jobs, Job{Impl: n, Label: v.Label, Zipf: s})
		}
	}
	if cfg.SmallRead > 0 {
		for _, n := range names {
			v, _ := lookupCacheVariant(n)
			jobs = append(jobs, Job{Impl: n, Label: v.Label, Zipf: cfg.Zipf[0], Small: true})
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
	Sizes  []int64
	Seeds  []uint64
	Total  int64   // sum of the sizes
	ByRank []int32 // ByRank[r] is the blob of popularity rank r (0: the most popular)
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
	}
	for r, b := range rng.Perm(cfg.Blobs) {
		w.ByRank[r] = int32(b)
	}
	return w
}

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

// readLengths returns the bytes each of reads moves: the whole blob, or
// with small reads the length of its piece (smallReadAt).
func readLengths(cfg Config, w cacheWorkload, reads []int32, small bool) []int64 {
	lens := make([]int64, len(reads))
	offs := smallReadOffsets(cfg, w, reads, small)
	for k, b := range reads {
		lens[k] = w.Sizes[b]
		if small {
			lens[k] = min(cfg.SmallRead, w.Sizes[b]-offs[k])
		}
	}
	return lens
}

// smallReadOffsets returns the offset of each small read of reads: a page
// of cfg.SmallRead bytes of the blob, drawn uniformly and independently of
// the blob. Without small reads it returns nil.
func smallReadOffsets(cfg Config, w cacheWorkload, reads []int32, small bool) []int64 {
	if !small {
		return nil
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5a11_0ff5))
	offs := make([]int64, len(reads))
	for k, b := range reads {
		pages := (w.Sizes[b] + cfg.SmallRead - 1) / cfg.SmallRead
		offs[k] = rng.Int64N(pages) * cfg.SmallRead
	}
	return offs
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
	Small     bool    `json:"small"`               // small reads (of ReadSize bytes), not whole blobs
	ReadSize  int64   `json:"read_size,omitempty"` // bytes of each small read
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

	opts := cacheOptions(cfg)
	opts.Policy, opts.DisablePromotion = v.policy, v.noPromotion
	m, err := spool.NewManager(opts)
	if err != nil {
		return Result{}, err
	}

	res := Result{Scenario: "cache", Impl: v.Name, Label: v.Label, Clients: 1}
	cr := &CacheResult{Policy: v.policy.String(), Zipf: job.Zipf, Scan: job.Scan, Small: job.Small, Blobs: len(w.Sizes), BlobBytes: w.Total, Buckets: make([]Window, cacheBuckets)}
	var page int64 // small reads: the page size, and the offset of each read
	offs := smallReadOffsets(cfg, w, reads, job.Small)
	if job.Small {
		page = cfg.SmallRead
		cr.ReadSize = page
	}
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
	pages := make([][]uint32, len(w.Sizes)) // small reads: CRC-32C of each page
	start := time.Now()
	for i, size := range w.Sizes {
		b, err := m.NewBuffer()
		if err != nil {
			m.Close()
			return Result{}, fmt.Errorf("blob %d: new buffer: %w", i, err)
		}
		bufs[i] = b
		crc, pcrc, err := writeBlob(b, w.Seeds[i], size, piece, page)
		if err != nil {
			fail("blob %d: %v", i, err)
		}
		want[i], pages[i] = crc, pcrc
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
		off, size, sum := int64(0), w.Sizes[b], want[b]
		if job.Small {
			off = offs[k]
			size, sum = min(page, size-off), pages[b][off/page]
		}
		got, err := bufs[b].ReadAt(buf[:size], off)
		switch {
		case err != nil && !(errors.Is(err, io.EOF) && int64(got) == size):
			fail("read %d of blob %d at %d: %v", k, b, off, err)
		case int64(got) != size:
			bad("read %d of blob %d at %d: %d bytes, want %d", k, b, off, got, size)
		case k%verifyEvery == 0:
			cr.Verified++
			if c := crc32.Checksum(buf[:got], castagnoli); c != sum {
				bad("read %d of blob %d at %d: crc %08x, want %08x", k, b, off, c, sum)
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
	res.Store = spoolStoreStats(st)
	return res, nil
}

// writeBlob writes size bytes generated from seed to b in len(piece)-byte
// pieces, and returns their CRC-32C and, if page is not 0, the CRC-32C of
// each page of page bytes (the last may be shorter).
func writeBlob(b *spool.Buffer, seed uint64, size int64, piece []byte, page int64) (uint32, []uint32, error) {
	g := newGen(seed)
	var crc uint32
	var pages []uint32
	if page > 0 {
		pages = make([]uint32, (size+page-1)/page)
	}
	for off := int64(0); off < size; {
		p := piece[:min(int64(len(piece)), size-off)]
		g.fill(p)
		crc = crc32.Update(crc, castagnoli, p)
		for pos := int64(0); page > 0 && pos < int64(len(p)); {
			i := (off + pos) / page
			end := min((i+1)*page-off, int64(len(p)))
			pages[i] = crc32.Update(pages[i], castagnoli, p[pos:end])
			pos = end
		}
		n, err := b.Write(p)
		off += int64(n)
		if err != nil {
			return crc, pages, fmt.Errorf("write at %d: %w", off, err)
		}
	}
	return crc, pages, nil
}

// scanBlob is one blob of the scan: a new buffer of cfg.ScanSize bytes
// written in pieces, read back once whole into buf and checked, and closed,
// like an upload flowing through.
func scanBlob(m *spool.Manager, cfg Config, j int, buf, piece []byte) error {
	b, err := m.NewBuffer()
	if err != nil {
		return err
	}
	want, _, werr := writeBlob(b, splitmix64(cfg.Seed^0x5ca7^uint64(j+1)*0xbf58476d1ce4e5b9), cfg.ScanSize, piece, 0)
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
	Blobs int   `json:"blobs"`
	Bytes int64 `json:"bytes"` // of the blobs
	// Charged is the budget all the blobs would take in memory at once, as
	// measured (measureCharges); blobs that cannot stay in memory at all
	// (Unfit) are left out.
	Charged    int64 `json:"charged_bytes"`
	Unfit      int   `json:"unfit,omitempty"`
	UnfitBytes int64 `json:"unfit_bytes,omitempty"`
	// Capacity is the budget the scenario's Manager enforces
	// (Stats().MemoryBudget), which the offline ceilings fill.
	Capacity int64     `json:"capacity"`
	Ceilings []Ceiling `json:"ceilings"` // one per exponent and read kind
}

// cacheOptions are the Options of the scenario's Manager, but for the
// policy: what measureCharges measures blobs with too.
func cacheOptions(cfg Config) spool.Options {
	return spool.Options{MemoryBudget: cfg.CacheBudget, TempDir: cfg.TempDir}
}

// prepareCache computes, in the parent, what each blob costs spool in
// memory and the offline ceilings of every exponent and read kind.
func prepareCache(cfg Config, run *Run) error {
	w := newCacheWorkload(cfg)
	charges, capacity, err := measureCharges(cfg, w.Sizes)
	if err != nil {
		return fmt.Errorf("measuring what spool charges for each blob: %w", err)
	}
	cr := &CacheRun{Blobs: len(w.Sizes), Bytes: w.Total, Capacity: capacity}
	for i, c := range charges {
		if c < 0 {
			cr.Unfit++
			cr.UnfitBytes += w.Sizes[i]
		} else {
			cr.Charged += c
		}
	}
	for _, small := range []bool{false, true} {
		if small && cfg.SmallRead == 0 {
			continue
		}
		for i, s := range cfg.Zipf {
			if small && i > 0 {
				break // small reads run at the first exponent only (cacheJobs)
			}
			reads := cacheReads(cfg, w, s)
			lens := readLengths(cfg, w, reads, small)
			c := greedyCeiling(charges, capacity, reads, lens)
			c.Zipf, c.Small = s, small
			c.TopShare = newZipf(len(w.Sizes), s).prob(0)
			fs := staticOracle(w, charges, capacity, s, reads, lens)
			c.Static, c.StaticSecondHalf, c.StaticExpected, c.StaticBound, c.StaticExact = fs.overall, fs.secondHalf, fs.expected, fs.bound, fs.exact
			cr.Ceilings = append(cr.Ceilings, c)
		}
	}
	run.Cache = cr
	return nil
}

// measureCharges returns the budget spool charges for each blob of sizes
// while the blob is in memory, and the budget the scenario's Manager
// enforces. The charges are measured, not computed from spool's memory
// model: each distinct size is written, in cachePiece pieces as runCache
// writes blobs, into a fresh buffer of an otherwise empty scratch Manager
// with the scenario's Options, and its charge is the rise of
// Stats().MemoryInUse. A blob that does not stay in memory even alone
// (larger than the budget) is charged -1: no cache of this budget holds it.
func measureCharges(cfg Config, sizes []int64) (charges []int64, capacity int64, err error) {
	m, err := spool.NewManager(cacheOptions(cfg))
	if err != nil {
		return nil, 0, err
	}
	defer func() {
		if cerr := m.Close(); err == nil {
			err = cerr
		}
	}()
	piece := make([]byte, cachePiece)
	bySize := make(map[int64]int64)
	charges = make([]int64, len(sizes))
	for i, size := range sizes {
		c, ok := bySize[size]
		if !ok {
			if c, err = measureCharge(m, size, piece); err != nil {
				return nil, 0, fmt.Errorf("blob %d of %d bytes: %w", i, size, err)
			}
			bySize[size] = c
		}
		charges[i] = c
	}
	return charges, m.Stats().MemoryBudget, nil
}

// measureCharge writes size bytes into a new buffer of m, which holds no
// other, and returns the budget that buffer takes, or -1 if it went to
// disk.
func measureCharge(m *spool.Manager, size int64, piece []byte) (charge int64, err error) {
	before := m.Stats().MemoryInUse
	b, err := m.NewBuffer()
	if err != nil {
		return 0, err
	}
	defer func() {
		if cerr := b.Close(); err == nil {
			err = cerr
		}
	}()
	for off := int64(0); off < size; {
		n, err := b.Write(piece[:min(int64(len(piece)), size-off)])
		off += int64(n)
		if err != nil {
			return 0, err
		}
	}
	if b.OnDisk() {
		return -1, nil
	}
	return m.Stats().MemoryInUse - before, nil
}

// Ceiling is the outcome of greedyCeiling and staticOracle for one
// exponent and read kind.
type Ceiling struct {
	Zipf       float64 `json:"zipf"`
	Small      bool    `json:"small"`     // the small-read runs' ceiling: the same hits, other bytes
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
	StaticBound      float64 `json:"static_bound"`    // no fixed set can expect more
	StaticExact      bool    `json:"static_exact"`    // found by an exact knapsack
}

// fixedSet is the outcome of staticOracle.
type fixedSet struct {
	overall, secondHalf Window
	expected, bound     float64
	exact               bool
}

// knapsackCells bounds the table of the exact knapsack (one byte a cell).
const knapsackCells = 64 << 20

// staticOracle returns the hits over reads (whose bytes are lens), and
// over their second half, of the best fixed set by exact popularity, and
// that set's expected hit ratio: knowing each blob's probability at
// exponent s, the set of blobs whose charges fit in capacity with the
// highest total probability, held for the whole read phase. exact reports
// whether the set was found by an exact 0/1 knapsack (in units of the
// greatest common divisor of the charges); where that table would be too
// large, the set is instead filled greedily by probability per byte
// charged. bound is the fractional knapsack's value: no fixed set can
// expect more, so the best one lies between expected and bound.
//
// The reads are independent draws, so whatever a policy holds at a read,
// the read hits with probability at most that of the best set: no online
// policy, however clever, can expect a higher hit ratio than this set
// (a policy that knows the future, like greedyCeiling, can).
func staticOracle(w cacheWorkload, charges []int64, capacity int64, s float64, reads []int32, lens []int64) fixedSet {
	z := newZipf(len(w.Sizes), s)
	fits := func(b int32) bool { return charges[b] >= 0 && charges[b] <= capacity }
	var unit int64
	for b := range charges {
		if fits(int32(b)) {
			unit = gcd(unit, charges[b])
		}
	}
	var fs fixedSet
	in := make([]bool, len(w.Sizes))
	// Ranks by probability per byte charged, densest first: the greedy
	// fill and the fractional bound.
	var ranks []int
	for r, b := range w.ByRank {
		if fits(b) {
			ranks = append(ranks, r)
		}
	}
	density := func(r int) float64 {
		c := charges[w.ByRank[r]]
		if c == 0 {
			return math.Inf(1)
		}
		return z.prob(r) / float64(c)
	}
	sort.SliceStable(ranks, func(i, j int) bool { return density(ranks[i]) > density(ranks[j]) })
	free := capacity
	for _, r := range ranks {
		c := charges[w.ByRank[r]]
		if c <= free {
			fs.bound += z.prob(r)
			free -= c
			continue
		}
		fs.bound += z.prob(r) * float64(free) / float64(c)
		break
	}

	if n := int64(len(ranks)); unit > 0 && n*(capacity/unit+1) <= knapsackCells {
		fs.exact = true
		capUnits := capacity / unit
		// best[c]: the most probability in c units from the ranks so far;
		// take[i][c]: whether ranks[i] is in the set that achieves it.
		best := make([]float64, capUnits+1)
		take := make([][]bool, n)
		for i, r := range ranks {
			take[i] = make([]bool, capUnits+1)
			p, c := z.prob(r), charges[w.ByRank[r]]/unit
			for cap := capUnits; cap >= c; cap-- {
				if v := best[cap-c] + p; v > best[cap] {
					best[cap] = v
					take[i][cap] = true
				}
			}
		}
		for i, cap := n-1, capUnits; i >= 0; i-- {
			if take[i][cap] {
				b := w.ByRank[ranks[i]]
				in[b] = true
				cap -= charges[b] / unit
			}
		}
	} else {
		free := capacity
		for _, r := range ranks {
			b := w.ByRank[r]
			if c := charges[b]; c <= free {
				in[b] = true
				free -= c
			}
		}
	}
	for r, b := range w.ByRank {
		if in[b] {
			fs.expected += z.prob(r)
		}
	}
	fs.bound = max(fs.bound, fs.expected) // against rounding
	for k, b := range reads {
		win := Window{Reads: 1, Bytes: lens[k]}
		if in[b] {
			win.Hits, win.HitBytes = 1, lens[k]
		}
		fs.overall.add(win)
		if bucketOf(k, len(reads)) >= cacheBuckets/2 {
			fs.secondHalf.add(win)
		}
	}
	return fs
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// greedyCeiling simulates, offline, a cache of capacity bytes in which
// blob b takes charges[b] bytes (-1: it never fits), over the write phase
// (blob 0, 1, ... offered in turn, not counted) and then reads, read k
// moving lens[k] bytes. On a miss it admits the blob, evicting until it
// fits the resident blob whose next use is farthest weighted by its
// charge — the largest (next use − now) × charge, a blob never used again
// first — unless that would evict a blob whose weighted next use is no
// farther than the newcomer's own: then it declines the newcomer and
// evicts nothing.
//
// This is Belady's farthest-next-use rule made size-aware: a good
// approximation of the best any policy could do knowing the future, not
// the true optimum (which is NP-hard with sizes), so a policy may beat it
// slightly.
//
// Blobs with the same charge are ordered among themselves by next use
// alone, so each charge keeps a max-heap of its resident blobs by next
// use, and a victim is the best of the heap tops: O(log blobs + distinct
// charges) per eviction (a few hundred charges for 2,000 blobs of up to
// 4 MiB).
func greedyCeiling(charges []int64, capacity int64, reads []int32, lens []int64) Ceiling {
	start := time.Now()
	const never = math.MaxInt64
	nb, nr := len(charges), len(reads)
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
	classOf := func(charge int64) *ceilHeap {
		h := classes[charge]
		if h == nil {
			h = &ceilHeap{charge: charge}
			classes[charge] = h
			list = append(list, h)
		}
		return h
	}
	resident := make([]*ceilEntry, nb)
	free := capacity
	var c Ceiling
	var popped []*ceilEntry
	for t := range total {
		b := blobAt(t)
		if t >= nb {
			k := t - nb
			win := Window{Reads: 1, Bytes: lens[k]}
			if resident[b] != nil {
				win.Hits, win.HitBytes = 1, lens[k]
			}
			c.Overall.add(win)
			if bucketOf(k, nr) >= cacheBuckets/2 {
				c.SecondHalf.add(win)
			}
		}
		if e := resident[b]; e != nil {
			e.next = next[t]
			heap.Fix(classOf(e.charge), e.idx)
			continue
		}
		need := charges[b]
		if need < 0 || need > capacity || next[t] == never {
			c.Declined++
			continue
		}
		mine := ceilKey{dist: (next[t] - int64(t)) * need, charge: need}
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
			freed += best.charge
		}
		if declined {
			for _, e := range popped {
				heap.Push(classOf(e.charge), e)
			}
			c.Declined++
			continue
		}
		for _, e := range popped {
			resident[e.blob] = nil
			c.Evicted++
		}
		free += freed - need
		e := &ceilEntry{blob: b, next: next[t], charge: need}
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
	charge int64
	idx    int // in its ceilHeap
}

// ceilKey is how much a resident blob is worth evicting: the greater, the
// sooner.
type ceilKey struct {
	never  bool  // not used again
	dist   int64 // (next use - now) × charge, if not never
	charge int64
}

func (e *ceilEntry) key(now int64) ceilKey {
	if e.next == math.MaxInt64 {
		return ceilKey{never: true, charge: e.charge}
	}
	return ceilKey{dist: (e.next - now) * e.charge, charge: e.charge}
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
	return k.charge > o.charge
}

// ceilHeap is a max-heap by next use of the resident blobs of one charge.
type ceilHeap struct {
	charge int64
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
