package spool_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolkit/spool"
)

// Identifiers of this file carry an "mt" prefix so that they cannot clash
// with those of the other test files of package spool_test.

const mtCS = 4096 // chunk size used by most tests

// ---------------------------------------------------------------------------
// General helpers

// mtManager returns a Manager for opts, with TempDir set to a fresh
// t.TempDir() if opts has none, closed when the test ends.
func mtManager(t testing.TB, opts spool.Options) *spool.Manager {
	t.Helper()
	if opts.TempDir == "" {
		opts.TempDir = t.TempDir()
	}
	m, err := spool.NewManager(opts)
	if err != nil {
		t.Fatalf("NewManager(%+v): %v", opts, err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil && !errors.Is(err, spool.ErrClosed) {
			t.Errorf("Manager.Close: %v", err)
		}
	})
	return m
}

// mtBuffer returns a new Buffer of m.
func mtBuffer(t testing.TB, m *spool.Manager) *spool.Buffer {
	t.Helper()
	b, err := m.NewBuffer()
	if err != nil {
		t.Fatalf("NewBuffer: %v", err)
	}
	return b
}

// mtPattern returns n deterministic pseudo-random bytes, none of them zero
// (so that a stale or lost byte can never pass for a hole).
func mtPattern(n int, seed uint64) []byte {
	var key [32]byte
	for i := range 4 {
		key[8*i] = byte(seed >> (8 * i))
		key[8*i+1] = byte(seed >> (8*i + 32))
	}
	p := make([]byte, n)
	rand.NewChaCha8(key).Read(p)
	for i := bytes.IndexByte(p, 0); i >= 0; i = bytes.IndexByte(p, 0) {
		p[i] = byte(i%255) + 1
	}
	return p
}

// mtContent reads the whole buffer with ReadAt.
func mtContent(t testing.TB, b *spool.Buffer) []byte {
	t.Helper()
	size := b.Size()
	p := make([]byte, size)
	n, err := b.ReadAt(p, 0)
	if n != len(p) || err != nil {
		t.Fatalf("ReadAt(whole buffer of %d bytes) = %d, %v; want %d, nil", size, n, err, size)
	}
	return p
}

// mtWant checks that the buffer holds exactly want.
func mtWant(t testing.TB, b *spool.Buffer, want []byte) {
	t.Helper()
	if got := b.Size(); got != int64(len(want)) {
		t.Fatalf("Size() = %d, want %d", got, len(want))
	}
	got := mtContent(t, b)
	if i := mtFirstDiff(got, want); i >= 0 {
		t.Fatalf("content differs at byte %d (of %d): got %#x, want %#x", i, len(want), mtAt(got, i), mtAt(want, i))
	}
}

func mtAt(p []byte, i int) any {
	if i < len(p) {
		return p[i]
	}
	return "EOF"
}

// mtFirstDiff returns the first index where a and b differ, or -1.
func mtFirstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return n
	}
	return -1
}

func mtZeros(p []byte) bool {
	return len(bytes.Trim(p, "\x00")) == 0
}

// mtMust fails the test if err is not nil.
func mtMust(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// mtWrite writes p at off and checks that it all got written.
func mtWrite(t testing.TB, b *spool.Buffer, p []byte, off int64) {
	t.Helper()
	n, err := b.WriteAt(p, off)
	if n != len(p) || err != nil {
		t.Fatalf("WriteAt(%d bytes, %d) = %d, %v", len(p), off, n, err)
	}
}

// mtEvents collects OnSpill events.
type mtEvents struct {
	mu sync.Mutex
	ev []spool.SpillEvent
}

func (e *mtEvents) add(ev spool.SpillEvent) {
	e.mu.Lock()
	e.ev = append(e.ev, ev)
	e.mu.Unlock()
}

func (e *mtEvents) take() []spool.SpillEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	ev := e.ev
	e.ev = nil
	return ev
}

func (e *mtEvents) all() []spool.SpillEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.ev)
}

// mtCheckEvents checks that evs are exactly want (Buffer, Reason, Size,
// Moved, and nil Err), in that order.
func mtCheckEvents(t testing.TB, evs []spool.SpillEvent, want ...spool.SpillEvent) {
	t.Helper()
	if len(evs) != len(want) {
		t.Fatalf("got %d spill events %+v, want %d: %+v", len(evs), evs, len(want), want)
	}
	for i := range evs {
		g, w := evs[i], want[i]
		if g.Buffer != w.Buffer || g.Reason != w.Reason || g.Size != w.Size || g.Moved != w.Moved || g.Err != nil {
			t.Fatalf("spill event %d = %+v (reason %v), want %+v (reason %v)", i, g, g.Reason, w, w.Reason)
		}
	}
}

// mtCheckStatsSane checks the invariants that hold for any Stats.
// chunkMem returns the chunk memory of st: MemoryInUse without the read
// windows.
func chunkMem(st spool.Stats, cs int64) int64 {
	return st.MemoryInUse - int64(st.ReadWindows)*cs
}

func mtCheckStatsSane(t testing.TB, st spool.Stats, cs int64) {
	t.Helper()
	if st.MemoryInUse < 0 || st.MemoryInUse > st.MemoryBudget || chunkMem(st, cs) < 0 {
		t.Fatalf("MemoryInUse %d (%d read windows) out of [0, MemoryBudget %d]", st.MemoryInUse, st.ReadWindows, st.MemoryBudget)
	}
	if chunkMem(st, cs)%64 != 0 { // every size class is a multiple of 64
		t.Fatalf("chunk memory %d is not a sum of size classes", chunkMem(st, cs))
	}
	if st.DiskInUse < 0 || st.BuffersOnDisk < 0 || st.BuffersOnDisk > st.Buffers {
		t.Fatalf("inconsistent stats %+v", st)
	}
	if st.Evictions > st.Spills || st.SpilledBytes < 0 {
		t.Fatalf("inconsistent stats %+v", st)
	}
}

func mtClass(err error) string {
	switch {
	case err == nil:
		return "nil"
	case err == io.EOF:
		return "EOF"
	}
	return "error"
}

// ---------------------------------------------------------------------------
// Oracle: scripted operations run on a *spool.Buffer and on an *os.File

type mtOpKind int

const (
	mtOpWrite mtOpKind = iota
	mtOpWriteAt
	mtOpRead
	mtOpReadAt
	mtOpSeek
	mtOpTruncate
	mtOpReadByte
	mtOpWriteByte
	mtOpWriteString
	mtOpReadFrom
	mtOpWriteTo
	mtOpSize
)

type mtOp struct {
	kind   mtOpKind
	data   []byte // Write, WriteAt, WriteString, ReadFrom, WriteByte (data[0])
	off    int64  // WriteAt, ReadAt, Seek offset, Truncate size
	n      int    // Read, ReadAt length
	whence int    // Seek
}

func (o mtOp) String() string {
	switch o.kind {
	case mtOpWrite:
		return fmt.Sprintf("Write(%d bytes)", len(o.data))
	case mtOpWriteAt:
		return fmt.Sprintf("WriteAt(%d bytes, %d)", len(o.data), o.off)
	case mtOpRead:
		return fmt.Sprintf("Read(%d)", o.n)
	case mtOpReadAt:
		return fmt.Sprintf("ReadAt(%d, %d)", o.n, o.off)
	case mtOpSeek:
		return fmt.Sprintf("Seek(%d, %d)", o.off, o.whence)
	case mtOpTruncate:
		return fmt.Sprintf("Truncate(%d)", o.off)
	case mtOpReadByte:
		return "ReadByte()"
	case mtOpWriteByte:
		return fmt.Sprintf("WriteByte(%#x)", o.data[0])
	case mtOpWriteString:
		return fmt.Sprintf("WriteString(%d bytes)", len(o.data))
	case mtOpReadFrom:
		return fmt.Sprintf("ReadFrom(%d bytes)", len(o.data))
	case mtOpWriteTo:
		return "WriteTo()"
	case mtOpSize:
		return "Size()"
	}
	return fmt.Sprintf("op(%d)", int(o.kind))
}

func oWrite(p []byte) mtOp                { return mtOp{kind: mtOpWrite, data: p} }
func oWriteAt(p []byte, off int64) mtOp   { return mtOp{kind: mtOpWriteAt, data: p, off: off} }
func oRead(n int) mtOp                    { return mtOp{kind: mtOpRead, n: n} }
func oReadAt(n int, off int64) mtOp       { return mtOp{kind: mtOpReadAt, n: n, off: off} }
func oSeek(off int64, whence int) mtOp    { return mtOp{kind: mtOpSeek, off: off, whence: whence} }
func oTruncate(size int64) mtOp           { return mtOp{kind: mtOpTruncate, off: size} }
func oReadByte() mtOp                     { return mtOp{kind: mtOpReadByte} }
func oWriteByte(c byte) mtOp              { return mtOp{kind: mtOpWriteByte, data: []byte{c}} }
func oWriteString(s string) mtOp          { return mtOp{kind: mtOpWriteString, data: []byte(s)} }
func oReadFrom(p []byte) mtOp             { return mtOp{kind: mtOpReadFrom, data: p} }
func oWriteTo() mtOp                      { return mtOp{kind: mtOpWriteTo} }
func oSize() mtOp                         { return mtOp{kind: mtOpSize} }
func oWriteStringOf(p []byte) mtOp        { return mtOp{kind: mtOpWriteString, data: p} }
func oSeekStart(off int64) mtOp           { return oSeek(off, io.SeekStart) }
func oWritePat(n int, seed uint64) mtOp   { return oWrite(mtPattern(n, seed)) }
func oWriteAtPat(n int, off int64) mtOp   { return oWriteAt(mtPattern(n, uint64(off)+7), off) }
func oReadFromPat(n int, s uint64) mtOp   { return oReadFrom(mtPattern(n, s)) }
func oWriteStrPat(n int, s uint64) mtOp   { return oWriteStringOf(mtPattern(n, s)) }
func oSeekEnd(off int64) mtOp             { return oSeek(off, io.SeekEnd) }
func oSeekCur(off int64) mtOp             { return oSeek(off, io.SeekCurrent) }
func oReadAll() mtOp                      { return oRead(1 << 20) }
func oReadAtAll() mtOp                    { return oReadAt(1<<20, 0) }
func oWriteAtByte(c byte, off int64) mtOp { return oWriteAt([]byte{c}, off) }

// mtTarget is what the oracle needs of a file; *spool.Buffer and *os.File
// both implement it.
type mtTarget interface {
	io.Reader
	io.Writer
	io.ReaderAt
	io.WriterAt
	io.Seeker
	io.StringWriter
	io.ReaderFrom
	io.WriterTo
	Truncate(size int64) error
}

var (
	_ mtTarget = (*spool.Buffer)(nil)
	_ mtTarget = (*os.File)(nil)
)

// mtPieceReader returns at most max bytes per Read, and hides any WriteTo
// method, so that ReadFrom has to loop.
type mtPieceReader struct {
	r   io.Reader
	max int
}

func (r *mtPieceReader) Read(p []byte) (int, error) {
	if len(p) > r.max {
		p = p[:r.max]
	}
	return r.r.Read(p)
}

type mtResult struct {
	n     int64
	class string
	out   []byte
	err   error
}

func (r mtResult) String() string {
	return fmt.Sprintf("n=%d err=%v (%s) out=%d bytes", r.n, r.err, r.class, len(r.out))
}

func mtSizeOf(tg mtTarget) int64 {
	switch v := tg.(type) {
	case *spool.Buffer:
		return v.Size()
	case *os.File:
		fi, err := v.Stat()
		if err != nil {
			panic(err)
		}
		return fi.Size()
	}
	panic("unknown target")
}

// mtApply runs o on tg.
// mtWriteEnd returns where o, applied to the file f (whose offset is the
// shared one), asks to write up to, or 0 if o writes nothing.
func mtWriteEnd(f *os.File, o mtOp) int64 {
	var n int64
	switch o.kind {
	case mtOpWrite, mtOpWriteAt, mtOpWriteString, mtOpReadFrom:
		n = int64(len(o.data))
	case mtOpWriteByte:
		n = 1
	}
	if n == 0 {
		return 0
	}
	if o.kind == mtOpWriteAt {
		return o.off + n
	}
	pos, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0
	}
	return pos + n
}

// mtRoundUp rounds n up to a multiple of unit.
func mtRoundUp(n, unit int64) int64 { return (n + unit - 1) / unit * unit }

// mtDiskBound returns the most that the extents of a spilled buffer of
// size bytes may be charged to the disk budget: each block's extent is at
// most a chunk, charged for the granules (spool.DiskGranule) it overlaps,
// which is one granule more than its size when it straddles a granule
// boundary (a 1.5 KiB extent at 3 KiB takes two 4 KiB granules). DiskInUse
// also counts the arena's slack (spool.ArenaSlack): freed granules not yet
// punched out; callers subtract it.
func mtDiskBound(m *spool.Manager, size, cs int64) int64 {
	return mtRoundUp(size, cs) + (size+cs-1)/cs*spool.DiskGranule(m)
}

func mtApply(tg mtTarget, o mtOp) mtResult {
	var (
		n   int64
		err error
		out []byte
	)
	switch o.kind {
	case mtOpWrite:
		var k int
		k, err = tg.Write(o.data)
		n = int64(k)
	case mtOpWriteAt:
		var k int
		k, err = tg.WriteAt(o.data, o.off)
		n = int64(k)
	case mtOpRead:
		p := make([]byte, o.n)
		var k int
		k, err = tg.Read(p)
		n, out = int64(k), p[:max(k, 0)]
	case mtOpReadAt:
		p := make([]byte, o.n)
		var k int
		k, err = tg.ReadAt(p, o.off)
		n, out = int64(k), p[:max(k, 0)]
	case mtOpSeek:
		n, err = tg.Seek(o.off, o.whence)
	case mtOpTruncate:
		err = tg.Truncate(o.off)
	case mtOpReadByte:
		if br, ok := tg.(io.ByteReader); ok {
			var c byte
			c, err = br.ReadByte()
			if err == nil {
				n, out = 1, []byte{c}
			}
		} else {
			// The io.ByteReader contract, on top of Read.
			var p [1]byte
			var k int
			k, err = tg.Read(p[:])
			if k == 1 {
				n, out, err = 1, p[:], nil
			} else if err == nil {
				err = io.ErrNoProgress
			}
		}
	case mtOpWriteByte:
		if bw, ok := tg.(io.ByteWriter); ok {
			err = bw.WriteByte(o.data[0])
		} else {
			_, err = tg.Write(o.data[:1])
		}
	case mtOpWriteString:
		var k int
		k, err = tg.WriteString(string(o.data))
		n = int64(k)
	case mtOpReadFrom:
		n, err = tg.ReadFrom(&mtPieceReader{r: bytes.NewReader(o.data), max: 3000})
	case mtOpWriteTo:
		var w bytes.Buffer
		n, err = tg.WriteTo(&w)
		out = w.Bytes()
	case mtOpSize:
		n = mtSizeOf(tg)
	default:
		panic("unknown op")
	}
	return mtResult{n: n, class: mtClass(err), out: out, err: err}
}

// mtHarness runs operations on a Buffer and an *os.File side by side.
type mtHarness struct {
	t        *testing.T
	m        *spool.Manager
	b        *spool.Buffer
	f        *os.File
	cs       int64
	memLimit int64 // largest size a buffer stays in memory at

	// solo: b is the only buffer of m holding memory or a file, so Stats
	// describe b alone.
	solo bool
	// diskRule: b must be on disk exactly when it was forced there or grew
	// past memLimit (no other buffer can push it there).
	diskRule bool
	// forcedDisk: b was rolled over by Rollover or by an eviction.
	forcedDisk bool
	// maxEnd is the largest end of a write so far: a write that ends past
	// memLimit takes b to disk; a Truncate, which adds a hole, does not.
	maxEnd int64
	// lazy: compare the whole content only when every says so (size,
	// offset and Stats are compared after every step regardless).
	lazy     bool
	every    int
	hist     []string
	scratchB []byte
	scratchF []byte
}

func mtNewHarness(t *testing.T, m *spool.Manager, opts spool.Options, dir string) *mtHarness {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "oracle"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	cs := int64(opts.ChunkSize)
	if cs == 0 {
		cs = spool.DefaultChunkSize
	}
	budget := opts.MemoryBudget
	if budget == 0 {
		budget = spool.DefaultMemoryBudget
	}
	limit := budget / cs * cs
	if opts.BufferThreshold > 0 && opts.BufferThreshold < limit {
		limit = opts.BufferThreshold
	}
	return &mtHarness{t: t, m: m, b: mtBuffer(t, m), f: f, cs: cs, memLimit: limit, solo: true, diskRule: true}
}

func (h *mtHarness) note(s string) {
	h.hist = append(h.hist, s)
}

func (h *mtHarness) fatalf(format string, args ...any) {
	h.t.Helper()
	from := max(0, len(h.hist)-15)
	h.t.Fatalf("%s\nlast operations (%d to %d):\n  %s", fmt.Sprintf(format, args...), from, len(h.hist)-1, strings.Join(h.hist[from:], "\n  "))
}

// do runs o on both and compares the results, then the state.
func (h *mtHarness) do(o mtOp) {
	h.t.Helper()
	h.note(o.String())
	if end := mtWriteEnd(h.f, o); end > h.maxEnd {
		h.maxEnd = end
	}
	rb := mtApply(h.b, o)
	rf := mtApply(h.f, o)
	if rb.n != rf.n || rb.class != rf.class || !bytes.Equal(rb.out, rf.out) {
		where := ""
		if i := mtFirstDiff(rb.out, rf.out); i >= 0 {
			where = fmt.Sprintf(" (output differs at byte %d: %v vs %v)", i, mtAt(rb.out, i), mtAt(rf.out, i))
		}
		h.fatalf("%v: Buffer: %v; *os.File: %v%s", o, rb, rf, where)
	}
	h.check()
}

// check compares size, offset and the whole content, and checks Stats.
func (h *mtHarness) check() {
	h.t.Helper()
	h.every++
	h.checkContent(!h.lazy || h.every%4 == 0)
}

func (h *mtHarness) checkContent(full bool) {
	h.t.Helper()
	size := h.b.Size()
	fsize := mtSizeOf(h.f)
	if size != fsize {
		h.fatalf("Size() = %d, file size %d", size, fsize)
	}
	pb, err := h.b.Seek(0, io.SeekCurrent)
	if err != nil {
		h.fatalf("Seek(0, SeekCurrent): %v", err)
	}
	pf, err := h.f.Seek(0, io.SeekCurrent)
	if err != nil {
		h.fatalf("file Seek(0, SeekCurrent): %v", err)
	}
	if pb != pf {
		h.fatalf("offset %d, file offset %d", pb, pf)
	}
	if full {
		if int64(cap(h.scratchB)) < size {
			h.scratchB = make([]byte, size+size/2)
			h.scratchF = make([]byte, size+size/2)
		}
		gb, gf := h.scratchB[:size], h.scratchF[:size]
		nb, errB := h.b.ReadAt(gb, 0)
		nf, errF := h.f.ReadAt(gf, 0)
		if nb != int(size) || errB != nil || nf != int(size) || errF != nil {
			h.fatalf("reading whole content: Buffer %d, %v; file %d, %v (size %d)", nb, errB, nf, errF, size)
		}
		if i := mtFirstDiff(gb, gf); i >= 0 {
			h.fatalf("content differs at byte %d of %d: Buffer %#x, file %#x", i, size, gb[i], gf[i])
		}
	}

	st := h.m.Stats()
	mtCheckStatsSane(h.t, st, h.cs)
	onDisk := h.b.OnDisk()
	wantDisk := h.forcedDisk || h.maxEnd > h.memLimit
	if h.diskRule && onDisk != wantDisk {
		h.fatalf("OnDisk() = %v, want %v (largest write end so far %d, memory limit %d, forced %v)",
			onDisk, wantDisk, h.maxEnd, h.memLimit, h.forcedDisk)
	}
	if h.solo {
		if onDisk {
			// A spill file holds at most whole blocks up to the end,
			// rounded to granules, and the arena's slack.
			if chunkMem(st, h.cs) != 0 || st.ReadWindows > 1 || st.BuffersOnDisk != 1 ||
				st.DiskInUse-spool.ArenaSlack(h.m) > mtDiskBound(h.m, size, h.cs) {
				h.fatalf("buffer of size %d on disk, but stats %+v", size, st)
			}
		} else {
			if st.DiskInUse != 0 || st.BuffersOnDisk != 0 || st.ReadWindows != 0 || st.MemoryInUse > (size+h.cs-1)/h.cs*h.cs {
				h.fatalf("buffer of size %d in memory, but stats %+v", size, st)
			}
		}
	}
}

// rollover rolls the buffer over (not the file) and checks the state.
func (h *mtHarness) rollover() {
	h.t.Helper()
	h.note("(Rollover)")
	before := h.m.Stats().MemoryInUse
	if err := h.b.Rollover(); err != nil {
		h.fatalf("Rollover: %v", err)
	}
	if !h.b.OnDisk() {
		h.fatalf("OnDisk() = false after Rollover")
	}
	if after := h.m.Stats().MemoryInUse; after > before {
		h.fatalf("MemoryInUse rose from %d to %d in Rollover", before, after)
	}
	h.forcedDisk = true
	h.checkContent(true)
}

// evict makes other, a second buffer of the same Manager, take the whole
// memory limit, which must evict h.b if it holds any memory; then other
// gives it back.
func (h *mtHarness) evict(other *spool.Buffer, fill []byte) {
	h.t.Helper()
	h.note("(evict by second buffer)")
	before := h.m.Stats()
	hadMem := chunkMem(before, h.cs) > 0 // other holds nothing between evictions; a read window is taken back, not evicted
	wasOnDisk := h.b.OnDisk()
	if n, err := other.WriteAt(fill, 0); n != len(fill) || err != nil {
		h.fatalf("second buffer: WriteAt(%d bytes) = %d, %v", len(fill), n, err)
	}
	after := h.m.Stats()
	if other.OnDisk() {
		h.fatalf("second buffer went to disk instead of evicting (stats before %+v, after %+v)", before, after)
	}
	if hadMem {
		if !h.b.OnDisk() {
			h.fatalf("buffer holding %d bytes of memory not evicted", before.MemoryInUse)
		}
		if after.Evictions != before.Evictions+1 {
			h.fatalf("Evictions went from %d to %d, want +1", before.Evictions, after.Evictions)
		}
		h.forcedDisk = true
	} else if h.b.OnDisk() != wasOnDisk {
		h.fatalf("buffer without memory changed OnDisk to %v", h.b.OnDisk())
	}
	if got := mtContent(h.t, other); !bytes.Equal(got, fill) {
		h.fatalf("second buffer content wrong")
	}
	if err := other.Truncate(0); err != nil {
		h.fatalf("second buffer: Truncate(0): %v", err)
	}
	h.checkContent(true)
}

// restart closes the buffer and starts over with a new one and an empty
// file.
func (h *mtHarness) restart() {
	h.t.Helper()
	h.note("(restart)")
	h.checkContent(true)
	before := h.m.Stats()
	if err := h.b.Close(); err != nil {
		h.fatalf("Close: %v", err)
	}
	after := h.m.Stats()
	if after.Buffers != before.Buffers-1 {
		h.fatalf("Buffers went from %d to %d after Close", before.Buffers, after.Buffers)
	}
	if h.solo && (after.MemoryInUse != 0 || after.DiskInUse != 0 || after.BuffersOnDisk != 0) {
		h.fatalf("stats after closing the only buffer: %+v", after)
	}
	h.b = mtBuffer(h.t, h.m)
	if err := h.f.Truncate(0); err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.f.Seek(0, io.SeekStart); err != nil {
		h.t.Fatal(err)
	}
	h.forcedDisk, h.maxEnd = false, 0
	h.check()
}

// mtSequence is a scripted sequence of operations. (Seek whences 3 and 4
// are left out of them: an *os.File on Linux takes them as SEEK_DATA and
// SEEK_HOLE, while a Buffer rejects them; TestSeekErrors covers that.)
type mtSequence struct {
	name string
	ops  []mtOp
}

// mtSequences are the scripted operation sequences. The chunk size of the
// configurations they run in is 4096, so many offsets sit near multiples
// of it.
func mtSequences() []mtSequence {
	return []mtSequence{
		{"basic", []mtOp{
			oWriteString("hello, world"), oSize(), oSeekStart(0), oRead(5), oRead(100), oRead(100),
			oRead(0), oSeekEnd(-5), oRead(5), oReadAt(5, 7), oReadAt(50, 7), oReadAt(0, 12), oReadAt(1, 12),
			oSeekCur(0), oWriteString("!"), oReadAtAll(),
		}},
		{"empty", []mtOp{
			oRead(10), oReadAt(10, 0), oReadAt(0, 0), oReadByte(), oRead(0), oWriteTo(), oSeekEnd(0),
			oSize(), oWrite(nil), oWriteString(""), oReadFrom(nil), oTruncate(0), oSize(),
		}},
		{"chunk-boundaries", []mtOp{
			oWritePat(4095, 1), oWritePat(2, 2), oWritePat(8192, 3), oReadAt(4096, 4000), oReadAt(100, 12280),
			oSeekStart(4090), oRead(10), oWriteAtPat(10, 8187), oSize(), oReadAt(2, 4095), oReadAt(8193, 4095),
			oWriteAtPat(1, 4096), oWriteAtPat(4096, 12289), oReadAtAll(),
		}},
		{"overwrite", []mtOp{
			oWritePat(6000, 4), oSeekStart(1000), oWritePat(3000, 5), oWriteAtPat(5000, 3000),
			oSeekStart(0), oRead(20000), oWriteAtPat(10, 0), oSeekStart(7990), oWritePat(30, 6), oReadAtAll(),
		}},
		{"gap-fill", []mtOp{
			oSeekStart(5000), oWriteString("x"), oReadAt(5001, 0), oSeekCur(9000), oWriteString("yz"),
			oRead(10), oSeekStart(0), oRead(16000), oSeekStart(4096), oWriteByte(7), oSeekStart(12288),
			oWriteString("q"), oReadAtAll(),
		}},
		{"holes", []mtOp{
			oWriteAtByte('a', 20000), oReadAt(20001, 0), oWriteAtByte('b', 4096), oWriteAtPat(100, 12000),
			oSize(), oRead(30000), oWriteAtByte('c', 40000), oReadAt(100, 39950), oWriteAtPat(5000, 70000),
			oReadAt(9000, 66000), oReadAtAll(),
		}},
		{"truncate", []mtOp{
			oWritePat(9000, 7), oTruncate(4100), oReadAt(9000, 0), oTruncate(12000), oReadAt(12000, 0),
			oTruncate(4096), oTruncate(8193), oReadAt(8193, 0), oTruncate(0), oTruncate(5), oReadAt(5, 0),
			oWriteString("abc"), oReadAtAll(), oTruncate(9003), oTruncate(9003), oSize(), oRead(10),
		}},
		{"shrink-grow-stale", []mtOp{
			oWritePat(3*mtCS+100, 8), oTruncate(10), oWriteAtByte('Z', 20000), oReadAt(20001, 0),
			oTruncate(mtCS + 1), oTruncate(30000), oSeekStart(0), oRead(30000), oTruncate(2*mtCS - 1),
			oWriteAtPat(10, 3*mtCS-5), oReadAtAll(), oTruncate(1), oWriteAtByte('y', 2*mtCS+1), oReadAtAll(),
		}},
		{"seek", []mtOp{
			oWritePat(100, 9), oSeekStart(10), oSeekCur(5), oSeekCur(-3), oSeekEnd(-10), oSeekEnd(10),
			oSeekStart(-1), oSeekCur(-1000), oSeekEnd(-101), oSeek(0, 5), oSeek(0, -1), oSeek(5, 42),
			oRead(5), oSeekCur(0), oSeekEnd(-100), oRead(200), oSeekEnd(5000), oRead(1), oWriteString("end"),
			oSeekStart(0), oReadAll(),
		}},
		{"bytes", []mtOp{
			oWriteByte('a'), oWriteByte(0), oWriteString("hello"), oSeekStart(0), oReadByte(), oReadByte(),
			oReadByte(), oSeekEnd(0), oReadByte(), oWriteString(""), oWriteStrPat(5000, 10), oSeekEnd(-1),
			oReadByte(), oReadByte(), oSeekStart(4095), oReadByte(), oReadByte(), oWriteByte(0xff),
			oSeekStart(4096), oReadByte(), oSeekStart(9000), oWriteByte(1), oReadAtAll(),
		}},
		{"readfrom-writeto", []mtOp{
			oReadFromPat(70000, 11), oSize(), oSeekStart(1000), oWriteTo(), oWriteTo(), oSeekStart(100),
			oReadFromPat(10, 12), oSeekStart(0), oWriteTo(), oReadFrom(nil), oSeekStart(100000), oWriteTo(),
			oReadFromPat(3, 13), oSeekStart(69990), oWriteTo(), oTruncate(5000), oSeekStart(0), oWriteTo(),
		}},
		{"errors", []mtOp{
			oWriteAt([]byte("x"), -1), oReadAt(1, -1), oTruncate(-1), oWriteString("ok"), oReadAt(0, -5),
			oWriteAt(nil, -1), oWrite(nil), oSeekStart(-2), oSize(), oReadAtAll(), oTruncate(-100),
			oSeekCur(0),
		}},
		{"large", []mtOp{
			oWritePat(50000, 14), oWriteAtPat(70000, 30000), oReadAt(100000, 0), oTruncate(65536),
			oTruncate(65537), oRead(20000), oSeekStart(0), oRead(200000), oWriteAtPat(1, 131072),
			oTruncate(32768), oReadAtAll(),
		}},
		{"zero-length-far", []mtOp{
			oSeekStart(10000), oWrite(nil), oSize(), oWriteAt(nil, 20000), oSize(), oRead(0), oRead(5),
			oWriteString("a"), oSeekStart(30000), oReadFrom(nil), oSize(), oReadAt(0, 40000), oReadAt(1, 40000),
		}},
	}
}

func mtRunAll(h *mtHarness, ops []mtOp) {
	h.t.Helper()
	for _, o := range ops {
		h.do(o)
	}
}

var (
	mtMemoryOpts = spool.Options{ChunkSize: mtCS, MemoryBudget: 64 << 20}
	mtTinyOpts   = spool.Options{ChunkSize: mtCS, MemoryBudget: 4 * mtCS, BufferThreshold: 10000}
	mtEvictOpts  = spool.Options{ChunkSize: mtCS, MemoryBudget: 16 * mtCS}
)

// mtRunOracle runs ops in one configuration.
func mtRunOracle(t *testing.T, opts spool.Options, ops []mtOp, drive func(h *mtHarness, ops []mtOp)) {
	t.Helper()
	dir := t.TempDir()
	opts.TempDir = dir
	m := mtManager(t, opts)
	h := mtNewHarness(t, m, opts, dir)
	h.check()
	drive(h, ops)
	// Finally: a rollover keeps everything, then Close gives everything back.
	h.rollover()
	if err := h.b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestOracleSequences runs every scripted sequence on a Buffer and an
// *os.File in several configurations, comparing every result and the whole
// state after every step.
func TestOracleSequences(t *testing.T) {
	for _, seq := range mtSequences() {
		t.Run(seq.name, func(t *testing.T) {
			t.Run("memory", func(t *testing.T) {
				mtRunOracle(t, mtMemoryOpts, seq.ops, mtRunAll)
			})
			t.Run("memory-64KiB-chunks", func(t *testing.T) {
				mtRunOracle(t, spool.Options{MemoryBudget: 64 << 20}, seq.ops, mtRunAll)
			})
			t.Run("tiny-budget", func(t *testing.T) {
				mtRunOracle(t, mtTinyOpts, seq.ops, mtRunAll)
			})
			t.Run("tiny-budget-LRU", func(t *testing.T) {
				o := mtTinyOpts
				o.Policy = spool.LeastRecentlyUsed
				mtRunOracle(t, o, seq.ops, mtRunAll)
			})
			for k := 0; k <= len(seq.ops); k++ {
				t.Run(fmt.Sprintf("rollover-before-step-%d", k), func(t *testing.T) {
					mtRunOracle(t, mtMemoryOpts, seq.ops, func(h *mtHarness, ops []mtOp) {
						for i, o := range ops {
							if i == k {
								h.rollover()
							}
							h.do(o)
						}
						if k == len(ops) {
							h.rollover()
						}
					})
				})
			}
			fill := mtPattern(int(mtEvictOpts.MemoryBudget), 99)
			for k := 0; k <= len(seq.ops); k++ {
				t.Run(fmt.Sprintf("evicted-before-step-%d", k), func(t *testing.T) {
					mtRunOracle(t, mtEvictOpts, seq.ops, func(h *mtHarness, ops []mtOp) {
						other := mtBuffer(t, h.m)
						for i, o := range ops {
							if i == k {
								h.evict(other, fill)
							}
							h.do(o)
						}
						if k == len(ops) {
							h.evict(other, fill)
						}
					})
				})
			}
			t.Run("other-buffer-holds-memory", func(t *testing.T) {
				// A second buffer holds all the budget but one chunk, so
				// the tested buffer's writes evict it.
				mtRunOracle(t, mtEvictOpts, seq.ops, func(h *mtHarness, ops []mtOp) {
					h.solo = false
					other := mtBuffer(t, h.m)
					hog := mtPattern(15*mtCS, 98)
					mtWrite(t, other, hog, 0)
					mtRunAll(h, ops)
					mtWant(t, other, hog)
				})
			})
		})
	}
}

// ---------------------------------------------------------------------------
// Oracle: random operations

type mtRandomConfig struct {
	name     string
	opts     spool.Options
	maxOff   int64 // offsets and sizes chosen stay below this, roughly
	maxLen   int   // longest write
	rollover int   // per mille chance of a Rollover
	evict    int   // per mille chance of an eviction by a second buffer
	restart  int   // per mille chance of closing the buffer and starting over
}

func mtRandomOp(r *rand.Rand, maxOff int64, maxLen int, pos int64) mtOp {
	length := func() int {
		switch r.IntN(4) {
		case 0:
			return r.IntN(16)
		case 1:
			return min(mtCS-8+r.IntN(16), maxLen)
		}
		return r.IntN(maxLen)
	}
	data := func() []byte { return mtPattern(length(), r.Uint64()) }
	off := func() int64 {
		if r.IntN(3) == 0 {
			return int64(r.IntN(int(maxOff/mtCS)+1))*mtCS + int64(r.IntN(9)) - 4 // near a chunk boundary
		}
		return r.Int64N(maxOff)
	}
	if pos > maxOff {
		return oSeekStart(off())
	}
	switch k := r.IntN(100); {
	case k < 14:
		return oWrite(data())
	case k < 28:
		return oWriteAt(data(), off())
	case k < 38:
		return oRead(length())
	case k < 50:
		return oReadAt(length(), off())
	case k < 60:
		switch r.IntN(8) {
		case 0:
			return oSeekCur(r.Int64N(2*mtCS) - mtCS)
		case 1:
			return oSeekEnd(r.Int64N(2*mtCS) - mtCS)
		case 2:
			return oSeekStart(-1 - r.Int64N(10))
		case 3:
			// Whences 3 and 4 are SEEK_DATA and SEEK_HOLE for an *os.File
			// on Linux: use ones that both reject.
			return oSeek(0, 5+r.IntN(3))
		}
		return oSeekStart(off())
	case k < 68:
		if r.IntN(4) == 0 {
			return oTruncate(r.Int64N(maxOff / 8))
		}
		return oTruncate(off())
	case k < 73:
		return oReadByte()
	case k < 78:
		return oWriteByte(byte(r.IntN(256)))
	case k < 84:
		return oWriteStringOf(data())
	case k < 88:
		return oReadFrom(mtPattern(r.IntN(2*maxLen), r.Uint64()))
	case k < 90:
		return oWriteTo()
	case k < 93:
		return oSize()
	case k < 96:
		return oWriteAt(data(), -1-r.Int64N(5))
	}
	return oReadAt(length(), -1-r.Int64N(5))
}

// TestOracleRandom runs a few thousand random operations per seed on a
// Buffer and an *os.File and compares everything after every step.
func TestOracleRandom(t *testing.T) {
	configs := []mtRandomConfig{
		{name: "memory", opts: mtMemoryOpts, maxOff: 200 << 10, maxLen: 9000, restart: 2},
		{name: "memory-with-rollovers", opts: mtMemoryOpts, maxOff: 200 << 10, maxLen: 9000, rollover: 3, restart: 4},
		{name: "tiny-budget", opts: mtTinyOpts, maxOff: 12 << 10, maxLen: 3000, restart: 30},
		{name: "evictions", opts: spool.Options{ChunkSize: mtCS, MemoryBudget: 64 * mtCS}, maxOff: 200 << 10, maxLen: 9000, evict: 10, restart: 8},
		{name: "evictions-LRU", opts: spool.Options{ChunkSize: mtCS, MemoryBudget: 64 * mtCS, Policy: spool.LeastRecentlyUsed}, maxOff: 200 << 10, maxLen: 9000, evict: 10, rollover: 2, restart: 8},
	}
	steps := sized(500, 1000, 2500)
	for _, cfg := range configs {
		for _, seed := range []uint64{1, 2} {
			t.Run(fmt.Sprintf("%s/seed=%d", cfg.name, seed), func(t *testing.T) {
				r := rand.New(rand.NewPCG(seed, 0xfeed))
				dir := t.TempDir()
				opts := cfg.opts
				opts.TempDir = dir
				m := mtManager(t, opts)
				h := mtNewHarness(t, m, opts, dir)
				h.lazy = true
				var other *spool.Buffer
				var fill []byte
				if cfg.evict > 0 {
					other = mtBuffer(t, m)
					fill = mtPattern(int(h.memLimit), seed)
				}
				pos := int64(0)
				inMemory, onDisk := 0, 0
				for i := 0; i < steps; i++ {
					if h.b.OnDisk() {
						onDisk++
					} else if h.b.Size() > 0 {
						inMemory++
					}
					switch k := r.IntN(1000); {
					case k < cfg.rollover:
						h.rollover()
					case k < cfg.rollover+cfg.evict:
						h.evict(other, fill)
					case k < cfg.rollover+cfg.evict+cfg.restart:
						h.restart()
						pos = 0
					default:
						o := mtRandomOp(r, cfg.maxOff, cfg.maxLen, pos)
						h.do(o)
						pos, _ = h.f.Seek(0, io.SeekCurrent)
					}
				}
				h.checkContent(true)
				st := m.Stats()
				t.Logf("steps with data in memory: %d, on disk: %d; stats %+v", inMemory, onDisk, st)
				if inMemory < steps/10 || (cfg.name != "memory" && onDisk < steps/10) {
					t.Errorf("configuration not exercised: %d steps with data in memory, %d on disk", inMemory, onDisk)
				}
				if cfg.evict > 0 && st.Evictions == 0 {
					t.Errorf("no eviction happened")
				}
			})
		}
	}
}

// ---------------------------------------------------------------------------
// Semantics

// mtModes runs f on a fresh buffer in memory and on a fresh buffer that is
// already on disk.
func mtModes(t *testing.T, f func(t *testing.T, m *spool.Manager, b *spool.Buffer)) {
	t.Helper()
	t.Run("memory", func(t *testing.T) {
		m := mtManager(t, mtMemoryOpts)
		b := mtBuffer(t, m)
		f(t, m, b)
		if b.OnDisk() {
			t.Errorf("buffer went to disk")
		}
	})
	t.Run("disk", func(t *testing.T) {
		m := mtManager(t, mtMemoryOpts)
		b := mtBuffer(t, m)
		mtMust(t, "Rollover", b.Rollover())
		f(t, m, b)
		if !b.OnDisk() {
			t.Errorf("buffer not on disk")
		}
	})
}

func TestReadAtEndEOF(t *testing.T) {
	mtModes(t, func(t *testing.T, m *spool.Manager, b *spool.Buffer) {
		p := make([]byte, 10)
		if n, err := b.Read(p); n != 0 || err != io.EOF {
			t.Errorf("Read on empty buffer = %d, %v; want 0, io.EOF", n, err)
		}
		mtWrite(t, b, []byte("abc"), 0)
		if _, err := b.Seek(0, io.SeekEnd); err != nil {
			t.Fatal(err)
		}
		if n, err := b.Read(p); n != 0 || err != io.EOF {
			t.Errorf("Read at end = %d, %v; want 0, io.EOF", n, err)
		}
		if _, err := b.Seek(100, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if n, err := b.Read(p); n != 0 || err != io.EOF {
			t.Errorf("Read past end = %d, %v; want 0, io.EOF", n, err)
		}
		if c, err := b.ReadByte(); c != 0 || err != io.EOF {
			t.Errorf("ReadByte past end = %d, %v; want 0, io.EOF", c, err)
		}
		if n, err := b.Read(nil); n != 0 || err != nil {
			t.Errorf("Read(nil) past end = %d, %v; want 0, nil", n, err)
		}
		if _, err := b.Seek(1, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if n, err := b.Read(p); n != 2 || err != nil || string(p[:n]) != "bc" {
			t.Errorf("Read of the last 2 bytes = %d, %v, %q; want 2, nil, \"bc\"", n, err, p[:n])
		}
		if n, err := b.Read(p); n != 0 || err != io.EOF {
			t.Errorf("next Read = %d, %v; want 0, io.EOF", n, err)
		}
	})
}

func TestReadAtShortEOF(t *testing.T) {
	mtModes(t, func(t *testing.T, m *spool.Manager, b *spool.Buffer) {
		data := mtPattern(3*mtCS+10, 1)
		mtWrite(t, b, data, 0)
		for _, tc := range []struct {
			off, n int64
			want   int
			err    error
		}{
			{0, int64(len(data)), len(data), nil},
			{0, int64(len(data)) + 1, len(data), io.EOF},
			{mtCS, 3 * mtCS, 2*mtCS + 10, io.EOF},
			{int64(len(data)) - 1, 2, 1, io.EOF},
			{int64(len(data)), 1, 0, io.EOF},
			{int64(len(data)) + 5000, 1, 0, io.EOF},
			{int64(len(data)), 0, 0, nil},
		} {
			p := make([]byte, tc.n)
			n, err := b.ReadAt(p, tc.off)
			if n != tc.want || err != tc.err {
				t.Errorf("ReadAt(%d bytes, %d) = %d, %v; want %d, %v", tc.n, tc.off, n, err, tc.want, tc.err)
				continue
			}
			if n > 0 && !bytes.Equal(p[:n], data[tc.off:tc.off+int64(n)]) {
				t.Errorf("ReadAt(%d bytes, %d) read wrong bytes", tc.n, tc.off)
			}
		}
		if pos, _ := b.Seek(0, io.SeekCurrent); pos != 0 {
			t.Errorf("ReadAt moved the offset to %d", pos)
		}
	})
}

func TestWritePastEndFillsZeros(t *testing.T) {
	mtModes(t, func(t *testing.T, m *spool.Manager, b *spool.Buffer) {
		mtWrite(t, b, []byte("head"), 0)
		if _, err := b.Seek(2*mtCS+7, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if n, err := b.Write([]byte("tail")); n != 4 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		want := make([]byte, 2*mtCS+11)
		copy(want, "head")
		copy(want[2*mtCS+7:], "tail")
		mtWant(t, b, want)
		if pos, _ := b.Seek(0, io.SeekCurrent); pos != 2*mtCS+11 {
			t.Errorf("offset %d after Write, want %d", pos, 2*mtCS+11)
		}
	})
}

func TestTruncateExtendsWithZeros(t *testing.T) {
	mtModes(t, func(t *testing.T, m *spool.Manager, b *spool.Buffer) {
		mtWrite(t, b, []byte("data"), 0)
		before := m.Stats().MemoryInUse
		mtMust(t, "Truncate", b.Truncate(5*mtCS+3))
		if got := m.Stats().MemoryInUse; got != before {
			t.Errorf("Truncate to grow took memory: %d -> %d", before, got)
		}
		want := make([]byte, 5*mtCS+3)
		copy(want, "data")
		mtWant(t, b, want)
		if pos, _ := b.Seek(0, io.SeekCurrent); pos != 0 {
			t.Errorf("Truncate moved the offset to %d", pos)
		}
	})
}

// TestShrinkGrowNoStaleBytes checks that bytes cut off by Truncate never
// come back, whether the buffer stays in memory, is on disk, or rolls over
// in between, and that chunks recycled from other buffers show no stale
// bytes.
func TestShrinkGrowNoStaleBytes(t *testing.T) {
	type step func(t *testing.T, b *spool.Buffer)
	rollover := func(t *testing.T, b *spool.Buffer) { mtMust(t, "Rollover", b.Rollover()) }
	none := func(t *testing.T, b *spool.Buffer) {}
	for _, tc := range []struct {
		name               string
		before, mid, after step
	}{
		{"memory", none, none, none},
		{"disk", rollover, none, none},
		{"rollover-after-shrink", none, rollover, none},
		{"rollover-after-grow", none, none, rollover},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mtManager(t, mtMemoryOpts)
			b := mtBuffer(t, m)
			tc.before(t, b)
			data := mtPattern(3*mtCS+100, 3)
			for _, cut := range []int64{3*mtCS + 99, 2*mtCS + 1, 2 * mtCS, mtCS + 17, 10, 1, 0} {
				mtWrite(t, b, data, 0)
				mtMust(t, "Truncate", b.Truncate(cut))
				tc.mid(t, b)
				mtMust(t, "Truncate", b.Truncate(int64(len(data))))
				tc.after(t, b)
				want := slices.Clone(data)
				clear(want[cut:])
				mtWant(t, b, want)

				// Shrink, then grow by writing past the end.
				mtMust(t, "Truncate", b.Truncate(cut))
				tc.mid(t, b)
				mtWrite(t, b, []byte{'!'}, int64(len(data)))
				tc.after(t, b)
				want = append(want, '!')
				mtWant(t, b, want)
				mtMust(t, "Truncate", b.Truncate(0))
			}
		})
	}

	t.Run("recycled-chunks", func(t *testing.T) {
		m := mtManager(t, mtMemoryOpts)
		for round := 0; round < 20; round++ {
			dirty := mtBuffer(t, m)
			full := bytes.Repeat([]byte{0xAA}, 8*mtCS)
			mtWrite(t, dirty, full, 0)
			mtMust(t, "Close", dirty.Close())

			b := mtBuffer(t, m)
			mtWrite(t, b, []byte("x"), 5)
			mtMust(t, "Truncate", b.Truncate(3*mtCS))
			mtWrite(t, b, []byte("y"), 2*mtCS+5)
			mtWrite(t, b, []byte("z"), 4*mtCS-1)
			want := make([]byte, 4*mtCS)
			want[5], want[2*mtCS+5], want[4*mtCS-1] = 'x', 'y', 'z'
			mtWant(t, b, want)
			if _, err := b.Seek(6*mtCS, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Write([]byte("w")); err != nil {
				t.Fatal(err)
			}
			want = append(want, make([]byte, 2*mtCS+1)...)
			want[6*mtCS] = 'w'
			mtWant(t, b, want)
			mtMust(t, "Close", b.Close())
		}
	})
}

func TestHolesReadZero(t *testing.T) {
	mtModes(t, func(t *testing.T, m *spool.Manager, b *spool.Buffer) {
		far := int64(60 * mtCS) // a hole small enough to stay in memory (see TestSparseWriteGoesToDisk)
		mtWrite(t, b, []byte("far"), far)
		mtWrite(t, b, []byte("mid"), far/2+1)
		if got := b.Size(); got != far+3 {
			t.Fatalf("Size = %d, want %d", got, far+3)
		}
		if st := m.Stats(); st.MemoryInUse > 2*mtCS {
			t.Errorf("holes take memory: MemoryInUse %d", st.MemoryInUse)
		}
		want := make([]byte, far+3)
		copy(want[far:], "far")
		copy(want[far/2+1:], "mid")
		mtWant(t, b, want)
	})
}

// TestSparseWriteGoesToDisk: a write far past the end of a buffer in
// memory, which would leave a hole much larger than its data, takes the
// buffer to disk (SpillSparse) instead of growing its chunk table; the
// data and the hole read back right, and the hole takes no memory.
func TestSparseWriteGoesToDisk(t *testing.T) {
	var events []spool.SpillEvent
	opts := mtMemoryOpts
	opts.OnSpill = func(e spool.SpillEvent) { events = append(events, e) }
	m := mtManager(t, opts)
	b := mtBuffer(t, m)
	mtWrite(t, b, []byte("near"), 0)
	far := int64(16 << 20) // within the 64 MiB budget, so not SpillTooLarge
	mtWrite(t, b, []byte("far"), far)
	if !b.OnDisk() {
		t.Fatal("buffer with a 16 MiB hole stayed in memory")
	}
	if len(events) != 1 || events[0].Reason != spool.SpillSparse || events[0].Err != nil {
		t.Errorf("spill events %+v, want one SpillSparse", events)
	}
	if st := m.Stats(); st.MemoryInUse != 0 {
		t.Errorf("MemoryInUse = %d after the buffer went to disk", st.MemoryInUse)
	}
	p := make([]byte, 8)
	if n, err := b.ReadAt(p, far-5); n != 8 || err != nil || string(p) != "\x00\x00\x00\x00\x00far" {
		t.Errorf("ReadAt across the hole = %d, %v, %q", n, err, p)
	}
	if n, err := b.ReadAt(p[:4], 0); n != 4 || err != nil || string(p[:4]) != "near" {
		t.Errorf("ReadAt(0) = %d, %v, %q", n, err, p[:4])
	}
}

func TestSeekErrors(t *testing.T) {
	mtModes(t, func(t *testing.T, m *spool.Manager, b *spool.Buffer) {
		mtWrite(t, b, []byte("0123456789"), 0)
		if _, err := b.Seek(4, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			off    int64
			whence int
			want   error
		}{
			{-1, io.SeekStart, spool.ErrNegativeOffset},
			{-5, io.SeekCurrent, spool.ErrNegativeOffset},
			{-11, io.SeekEnd, spool.ErrNegativeOffset},
			{math.MinInt64, io.SeekStart, spool.ErrNegativeOffset},
			{0, 3, spool.ErrInvalidWhence},
			{0, -1, spool.ErrInvalidWhence},
			{1, 100, spool.ErrInvalidWhence},
		} {
			pos, err := b.Seek(tc.off, tc.whence)
			if !errors.Is(err, tc.want) {
				t.Errorf("Seek(%d, %d) = %d, %v; want %v", tc.off, tc.whence, pos, err, tc.want)
			}
			if cur, _ := b.Seek(0, io.SeekCurrent); cur != 4 {
				t.Errorf("failed Seek(%d, %d) moved the offset to %d", tc.off, tc.whence, cur)
			}
		}
		for _, tc := range []struct {
			off    int64
			whence int
			want   int64
		}{
			{-4, io.SeekCurrent, 0},
			{-10, io.SeekEnd, 0},
			{3, io.SeekCurrent, 3},
			{5, io.SeekEnd, 15},
			{0, io.SeekEnd, 10},
			{math.MaxInt64, io.SeekStart, math.MaxInt64},
		} {
			if pos, err := b.Seek(tc.off, tc.whence); pos != tc.want || err != nil {
				t.Errorf("Seek(%d, %d) = %d, %v; want %d, nil", tc.off, tc.whence, pos, err, tc.want)
			}
		}
		// The offset is now math.MaxInt64: moving it on overflows.
		if _, err := b.Seek(1, io.SeekCurrent); !errors.Is(err, spool.ErrTooLarge) {
			t.Errorf("Seek(1, SeekCurrent) at MaxInt64 = %v; want ErrTooLarge", err)
		}
		if _, err := b.Seek(math.MaxInt64, io.SeekEnd); !errors.Is(err, spool.ErrTooLarge) {
			t.Errorf("Seek(MaxInt64, SeekEnd) = %v; want ErrTooLarge", err)
		}
	})
}

func TestNegativeOffsetsAndSizes(t *testing.T) {
	mtModes(t, func(t *testing.T, m *spool.Manager, b *spool.Buffer) {
		mtWrite(t, b, []byte("abc"), 0)
		for _, off := range []int64{-1, -mtCS, math.MinInt64} {
			if n, err := b.WriteAt([]byte("x"), off); n != 0 || !errors.Is(err, spool.ErrNegativeOffset) {
				t.Errorf("WriteAt(x, %d) = %d, %v; want 0, ErrNegativeOffset", off, n, err)
			}
			if n, err := b.ReadAt(make([]byte, 1), off); n != 0 || !errors.Is(err, spool.ErrNegativeOffset) {
				t.Errorf("ReadAt(1, %d) = %d, %v; want 0, ErrNegativeOffset", off, n, err)
			}
		}
		for _, size := range []int64{-1, math.MinInt64} {
			if err := b.Truncate(size); !errors.Is(err, spool.ErrNegativeSize) {
				t.Errorf("Truncate(%d) = %v; want ErrNegativeSize", size, err)
			}
		}
		mtWant(t, b, []byte("abc"))
	})
}

func TestOffsetOverflow(t *testing.T) {
	mtModes(t, func(t *testing.T, m *spool.Manager, b *spool.Buffer) {
		if n, err := b.WriteAt([]byte("xy"), math.MaxInt64); n != 0 || !errors.Is(err, spool.ErrTooLarge) {
			t.Errorf("WriteAt(2 bytes, MaxInt64) = %d, %v; want 0, ErrTooLarge", n, err)
		}
		if n, err := b.WriteAt(make([]byte, 10), math.MaxInt64-5); n != 0 || !errors.Is(err, spool.ErrTooLarge) {
			t.Errorf("WriteAt(10 bytes, MaxInt64-5) = %d, %v; want 0, ErrTooLarge", n, err)
		}
		if _, err := b.Seek(math.MaxInt64, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if n, err := b.Write([]byte("xy")); n != 0 || !errors.Is(err, spool.ErrTooLarge) {
			t.Errorf("Write(2 bytes) at offset MaxInt64 = %d, %v; want 0, ErrTooLarge", n, err)
		}
		if n, err := b.WriteString("xy"); n != 0 || !errors.Is(err, spool.ErrTooLarge) {
			t.Errorf("WriteString(2 bytes) at offset MaxInt64 = %d, %v; want 0, ErrTooLarge", n, err)
		}
		if n, err := b.Read(make([]byte, 2)); n != 0 || err != io.EOF {
			t.Errorf("Read at offset MaxInt64 = %d, %v; want 0, io.EOF", n, err)
		}
		if b.Size() != 0 {
			t.Errorf("Size = %d after failed writes", b.Size())
		}
		if st := m.Stats(); st.MemoryInUse != 0 || st.DiskInUse != 0 {
			t.Errorf("failed writes left %+v", st)
		}
	})
}

// mtNoPanic runs f and turns a panic into a test failure.
func mtNoPanic(t *testing.T, what string, f func()) (ok bool) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s panicked: %v", what, r)
			ok = false
		}
	}()
	f()
	return true
}

// mtHeapGrowth returns how many bytes the Go heap allocated during f.
func mtHeapGrowth(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHugeOffsets checks that a write or Truncate at 1<<62 neither panics,
// hangs nor allocates memory for the hole, whatever the configuration; it
// may fail with an error (the file system cannot hold such a file).
func TestHugeOffsets(t *testing.T) {
	const huge = int64(1) << 62
	const maxHeap = 16 << 20 // far less than any table of the hole's chunks
	for _, tc := range []struct {
		name string
		opts spool.Options
	}{
		{"defaults", spool.Options{}},
		{"tiny-budget", mtTinyOpts},
		{"big-budget-with-threshold", spool.Options{ChunkSize: mtCS, MemoryBudget: math.MaxInt64, BufferThreshold: 1 << 20}},
		{"big-budget", spool.Options{ChunkSize: mtCS, MemoryBudget: math.MaxInt64}},
		{"big-budget-64KiB-chunks", spool.Options{MemoryBudget: 1 << 62}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mtManager(t, tc.opts)
			cs := int64(tc.opts.ChunkSize)
			if cs == 0 {
				cs = spool.DefaultChunkSize
			}
			t.Run("WriteAt", func(t *testing.T) {
				b := mtBuffer(t, m)
				mtWrite(t, b, []byte("start"), 0)
				var n int
				var err error
				ok := true
				grew := mtHeapGrowth(func() {
					ok = mtNoPanic(t, "WriteAt(2 bytes, 1<<62)", func() { n, err = b.WriteAt([]byte("xy"), huge) })
				})
				if grew > maxHeap {
					t.Errorf("WriteAt(2 bytes, 1<<62) allocated %d bytes of Go heap", grew)
				}
				if st := m.Stats(); st.MemoryInUse > 2*cs {
					t.Errorf("after WriteAt at 1<<62: MemoryInUse %d", st.MemoryInUse)
				}
				if !ok {
					// Nothing more to check about the result.
				} else if err != nil {
					t.Logf("WriteAt(2 bytes, 1<<62) = %d, %v", n, err)
					if n != 0 && n != 2 {
						t.Errorf("WriteAt(2 bytes, 1<<62) = %d, %v", n, err)
					}
					if (n == 0 && b.Size() != 5) || (n > 0 && b.Size() != huge+int64(n)) {
						t.Errorf("Size = %d after failed WriteAt of %d bytes", b.Size(), n)
					}
				} else {
					if n != 2 || b.Size() != huge+2 {
						t.Errorf("WriteAt(2 bytes, 1<<62) = %d, nil with Size %d", n, b.Size())
					}
					p := make([]byte, 4)
					if n, err := b.ReadAt(p, huge-2); n != 4 || err != nil || string(p) != "\x00\x00xy" {
						t.Errorf("ReadAt(4, 1<<62-2) = %d, %v, %q", n, err, p)
					}
				}
				p := make([]byte, 5)
				if n, err := b.ReadAt(p, 0); n != 5 || err != nil || string(p) != "start" {
					t.Errorf("ReadAt(5, 0) = %d, %v, %q; want the data written first", n, err, p)
				}
				if err := b.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			t.Run("Truncate", func(t *testing.T) {
				b := mtBuffer(t, m)
				mtWrite(t, b, []byte("start"), 0)
				var err error
				ok := true
				grew := mtHeapGrowth(func() {
					ok = mtNoPanic(t, "Truncate(1<<62)", func() { err = b.Truncate(huge) })
				})
				if grew > maxHeap {
					t.Errorf("Truncate(1<<62) allocated %d bytes of Go heap", grew)
				}
				if st := m.Stats(); st.MemoryInUse > 2*cs {
					t.Errorf("after Truncate(1<<62): MemoryInUse %d", st.MemoryInUse)
				}
				if !ok {
					// Nothing more to check about the result.
				} else if err != nil {
					t.Logf("Truncate(1<<62) = %v", err)
				} else {
					if b.Size() != huge {
						t.Errorf("Size = %d after Truncate(1<<62)", b.Size())
					}
					p := make([]byte, 16)
					if n, err := b.ReadAt(p, huge-10); n != 10 || err != io.EOF || !mtZeros(p) {
						t.Errorf("ReadAt(16, 1<<62-10) = %d, %v, %q; want 10 zeros, io.EOF", n, err, p)
					}
				}
				p := make([]byte, 5)
				if n, err := b.ReadAt(p, 0); n != 5 || err != nil || string(p) != "start" {
					t.Errorf("ReadAt(5, 0) = %d, %v, %q; want the data written first", n, err, p)
				}
				if err := b.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			st := m.Stats()
			if st.MemoryInUse != 0 || st.Buffers != 0 {
				t.Errorf("after closing every buffer: %+v", st)
			}
		})
	}
}

// mtUseAll calls every method of b and checks that each reports ErrClosed.
func mtUseAll(t *testing.T, b *spool.Buffer) {
	t.Helper()
	p := make([]byte, 4)
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, spool.ErrClosed) {
			t.Errorf("%s after Close: %v; want ErrClosed", what, err)
		}
	}
	_, err := b.Write(p)
	check("Write", err)
	_, err = b.Write(nil)
	check("Write(nil)", err)
	_, err = b.WriteAt(p, 0)
	check("WriteAt", err)
	_, err = b.WriteString("abc")
	check("WriteString", err)
	check("WriteByte", b.WriteByte('x'))
	_, err = b.Read(p)
	check("Read", err)
	_, err = b.ReadAt(p, 0)
	check("ReadAt", err)
	_, err = b.ReadAt(nil, 0)
	check("ReadAt(nil)", err)
	_, err = b.ReadByte()
	check("ReadByte", err)
	_, err = b.Seek(0, io.SeekStart)
	check("Seek", err)
	check("Truncate", b.Truncate(0))
	check("Truncate(10)", b.Truncate(10))
	check("Rollover", b.Rollover())
	_, err = b.ReadFrom(strings.NewReader("data"))
	check("ReadFrom", err)
	_, err = b.WriteTo(io.Discard)
	check("WriteTo", err)
	check("Close", b.Close())
	if b.Size() != 0 {
		t.Errorf("Size after Close = %d, want 0", b.Size())
	}
	if b.OnDisk() {
		t.Errorf("OnDisk after Close = true")
	}
}

func TestUseAfterClose(t *testing.T) {
	modes := []struct {
		name string
		prep func(t *testing.T, b *spool.Buffer)
	}{
		{"empty", func(t *testing.T, b *spool.Buffer) {}},
		{"memory", func(t *testing.T, b *spool.Buffer) { mtWrite(t, b, mtPattern(3*mtCS, 1), 0) }},
		{"disk", func(t *testing.T, b *spool.Buffer) {
			mtWrite(t, b, mtPattern(3*mtCS, 1), 0)
			mtMust(t, "Rollover", b.Rollover())
		}},
	}
	for _, md := range modes {
		t.Run(md.name, func(t *testing.T) {
			m := mtManager(t, mtMemoryOpts)
			b := mtBuffer(t, m)
			md.prep(t, b)
			mtMust(t, "Close", b.Close())
			mtUseAll(t, b)
			st := m.Stats()
			if st.MemoryInUse != 0 || st.DiskInUse != 0 || st.Buffers != 0 || st.BuffersOnDisk != 0 {
				t.Errorf("stats after Close: %+v", st)
			}
		})
	}
}

// TestReadFromEmptyAfterClose: after Close every method returns ErrClosed,
// including ReadFrom of a reader that has nothing to give.
func TestReadFromEmptyAfterClose(t *testing.T) {
	m := mtManager(t, mtMemoryOpts)
	b := mtBuffer(t, m)
	mtMust(t, "Close", b.Close())
	if n, err := b.ReadFrom(strings.NewReader("")); !errors.Is(err, spool.ErrClosed) {
		t.Errorf("ReadFrom(empty reader) after Close = %d, %v; want ErrClosed", n, err)
	}
}

func TestDoubleClose(t *testing.T) {
	m := mtManager(t, mtMemoryOpts)
	b := mtBuffer(t, m)
	mtWrite(t, b, []byte("x"), 0)
	if err := b.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := b.Close(); !errors.Is(err, spool.ErrClosed) {
		t.Errorf("second Close = %v; want ErrClosed", err)
	}
}

func TestManagerClose(t *testing.T) {
	var events mtEvents
	opts := mtMemoryOpts
	opts.OnSpill = events.add
	opts.TempDir = t.TempDir()
	m, err := spool.NewManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	var bufs []*spool.Buffer
	for i := 0; i < 6; i++ {
		b := mtBuffer(t, m)
		mtWrite(t, b, mtPattern(i*mtCS+i, uint64(i)), 0)
		if i%2 == 1 {
			mtMust(t, "Rollover", b.Rollover())
		}
		bufs = append(bufs, b)
	}
	mtMust(t, "closing one buffer early", bufs[5].Close())
	st := m.Stats()
	if st.Buffers != 5 || st.BuffersOnDisk != 2 || st.MemoryInUse == 0 || st.DiskInUse == 0 {
		t.Fatalf("stats before Manager.Close: %+v", st)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Manager.Close: %v", err)
	}
	for i, b := range bufs {
		t.Run(fmt.Sprintf("buffer-%d", i), func(t *testing.T) { mtUseAll(t, b) })
	}
	if b, err := m.NewBuffer(); b != nil || !errors.Is(err, spool.ErrClosed) {
		t.Errorf("NewBuffer after Close = %v, %v; want nil, ErrClosed", b, err)
	}
	if err := m.Close(); !errors.Is(err, spool.ErrClosed) {
		t.Errorf("second Manager.Close = %v; want ErrClosed", err)
	}
	st = m.Stats()
	if st.MemoryInUse != 0 || st.DiskInUse != 0 || st.Buffers != 0 || st.BuffersOnDisk != 0 {
		t.Errorf("stats after Manager.Close: %+v", st)
	}
	if st.Spills != 3 || st.MemoryBudget != opts.MemoryBudget {
		t.Errorf("counters after Manager.Close: %+v; want Spills 3, MemoryBudget %d", st, opts.MemoryBudget)
	}
	if ents, err := os.ReadDir(opts.TempDir); err != nil || len(ents) != 0 {
		t.Errorf("TempDir holds %v (%v) after Close", ents, err)
	}
}

// ---------------------------------------------------------------------------
// Options

func TestOptionsValidation(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "regular")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		opts  spool.Options
		field string
	}{
		{"negative-MemoryBudget", spool.Options{MemoryBudget: -1}, "MemoryBudget"},
		{"very-negative-MemoryBudget", spool.Options{MemoryBudget: math.MinInt64}, "MemoryBudget"},
		{"MemoryBudget-below-ChunkSize", spool.Options{MemoryBudget: 100}, "MemoryBudget"},
		{"MemoryBudget-below-explicit-ChunkSize", spool.Options{MemoryBudget: 8192, ChunkSize: 16384}, "MemoryBudget"},
		{"negative-BufferThreshold", spool.Options{BufferThreshold: -1}, "BufferThreshold"},
		{"ChunkSize-not-power-of-two", spool.Options{ChunkSize: 5000}, "ChunkSize"},
		{"ChunkSize-not-power-of-two-in-range", spool.Options{ChunkSize: 4096 + 8192}, "ChunkSize"},
		{"ChunkSize-too-small", spool.Options{ChunkSize: 2048}, "ChunkSize"},
		{"ChunkSize-one", spool.Options{ChunkSize: 1}, "ChunkSize"},
		{"ChunkSize-too-large", spool.Options{ChunkSize: 2 << 20}, "ChunkSize"},
		{"ChunkSize-negative", spool.Options{ChunkSize: -4096}, "ChunkSize"},
		{"ChunkSize-min-int", spool.Options{ChunkSize: math.MinInt}, "ChunkSize"},
		{"TempDir-missing", spool.Options{TempDir: filepath.Join(dir, "no", "such")}, "TempDir"},
		{"TempDir-regular-file", spool.Options{TempDir: file}, "TempDir"},
		{"Pattern-with-slash", spool.Options{Pattern: "a/b*"}, "Pattern"},
		{"Pattern-with-separator", spool.Options{Pattern: "x" + string(os.PathSeparator) + "*"}, "Pattern"},
		{"Policy-unknown", spool.Options{Policy: spool.Policy(7)}, "Policy"},
		{"Policy-negative", spool.Options{Policy: spool.Policy(-1)}, "Policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.TempDir == "" {
				tc.opts.TempDir = dir
			}
			m, err := spool.NewManager(tc.opts)
			if err == nil {
				m.Close()
				t.Fatalf("NewManager(%+v) succeeded", tc.opts)
			}
			if m != nil {
				t.Errorf("NewManager returned a Manager with error %v", err)
			}
			if !errors.Is(err, spool.ErrInvalidOptions) {
				t.Errorf("error %q does not wrap ErrInvalidOptions", err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name the field %s", err, tc.field)
			}
		})
	}

	t.Run("valid-edges", func(t *testing.T) {
		for _, o := range []spool.Options{
			{ChunkSize: spool.MinChunkSize, MemoryBudget: spool.MinChunkSize},
			{ChunkSize: spool.MaxChunkSize, MemoryBudget: spool.MaxChunkSize},
			{ChunkSize: 1 << 16, MemoryBudget: 1<<16 + 1, BufferThreshold: 1},
			{Pattern: "spool-test-*", Policy: spool.LeastRecentlyUsed},
		} {
			o.TempDir = dir
			m, err := spool.NewManager(o)
			if err != nil {
				t.Errorf("NewManager(%+v): %v", o, err)
				continue
			}
			m.Close()
		}
	})
}

func TestZeroOptions(t *testing.T) {
	m, err := spool.NewManager(spool.Options{})
	if err != nil {
		t.Fatalf("NewManager(Options{}): %v", err)
	}
	defer m.Close()
	if st := m.Stats(); st.MemoryBudget != spool.DefaultMemoryBudget || st.Buffers != 0 || st.MemoryInUse != 0 {
		t.Errorf("stats of a new default Manager: %+v", st)
	}
	b := mtBuffer(t, m)
	data := mtPattern(100000, 5)
	if n, err := b.Write(data); n != len(data) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if b.OnDisk() {
		t.Errorf("100 kB buffer went to disk with a 64 MiB budget")
	}
	// A full default chunk, and the smallest class that holds the other
	// 34,464 bytes: 40 KiB.
	if st := m.Stats(); st.MemoryInUse != spool.DefaultChunkSize+40<<10 {
		t.Errorf("MemoryInUse %d, want a default chunk and 40 KiB (%d)", st.MemoryInUse, spool.DefaultChunkSize+40<<10)
	}
	mtWant(t, b, data)
	mtMust(t, "Close", b.Close())
}

func TestNames(t *testing.T) {
	for p, want := range map[spool.Policy]string{
		spool.LargestFirst: "LargestFirst", spool.LeastRecentlyUsed: "LeastRecentlyUsed", spool.Policy(9): "Policy(9)",
	} {
		if got := p.String(); got != want {
			t.Errorf("Policy(%d).String() = %q, want %q", int(p), got, want)
		}
	}
	for r, want := range map[spool.SpillReason]string{
		spool.SpillRequested: "Requested", spool.SpillThreshold: "Threshold", spool.SpillTooLarge: "TooLarge",
		spool.SpillBudget: "Budget", spool.SpillEvicted: "Evicted", spool.SpillReason(0): "SpillReason(0)",
	} {
		if got := r.String(); got != want {
			t.Errorf("SpillReason(%d).String() = %q, want %q", int(r), got, want)
		}
	}
}

// ---------------------------------------------------------------------------
// Budget behaviour

func TestEvictionTwoBuffers(t *testing.T) {
	for _, policy := range []spool.Policy{spool.LargestFirst, spool.LeastRecentlyUsed} {
		t.Run(policy.String(), func(t *testing.T) {
			var events mtEvents
			m := mtManager(t, spool.Options{ChunkSize: mtCS, MemoryBudget: 4 * mtCS, Policy: policy, OnSpill: events.add})
			a, b := mtBuffer(t, m), mtBuffer(t, m)
			da := mtPattern(4*mtCS, 1)
			mtWrite(t, a, da, 0)
			if st := m.Stats(); st.MemoryInUse != 4*mtCS || a.OnDisk() {
				t.Fatalf("after filling the budget with a: %+v, a on disk %v", st, a.OnDisk())
			}
			db := mtPattern(mtCS/2, 2)
			mtWrite(t, b, db, 0)
			if !a.OnDisk() || b.OnDisk() {
				t.Fatalf("a on disk %v, b on disk %v; want a evicted, b in memory", a.OnDisk(), b.OnDisk())
			}
			// a gives up one chunk, all b lacks: a victim is rolled over
			// only as far as the write needs.
			mtCheckEvents(t, events.take(), spool.SpillEvent{Buffer: a.ID(), Reason: spool.SpillEvicted, Size: 4 * mtCS, Moved: mtCS})
			st := m.Stats()
			if st.Spills != 1 || st.Evictions != 1 || st.SpilledBytes != mtCS || st.BuffersOnDisk != 1 ||
				st.MemoryInUse != 3*mtCS+mtCS/2 || st.Buffers != 2 || st.DiskInUse != mtCS || st.SpillErrors != 0 {
				t.Errorf("stats after eviction: %+v", st)
			}
			mtWant(t, a, da)
			mtWant(t, b, db)
		})
	}
}

// TestPolicyOrder builds cases in which LargestFirst and LeastRecentlyUsed
// pick different buffers to evict.
func TestPolicyOrder(t *testing.T) {
	type setup struct {
		chunks []int // chunks written to each buffer, in this order
		touch  []int // buffers then accessed, in this order
		touchW bool  // access by a 1-byte WriteAt (in a held chunk) instead of ReadAt
		need   int   // chunks the new buffer then writes
	}
	for _, tc := range []struct {
		name      string
		s         setup
		largest   []int // buffers evicted, in order, under LargestFirst
		leastUsed []int // and under LeastRecentlyUsed
	}{
		{"sizes-1-3-2", setup{chunks: []int{1, 3, 2}, need: 3}, []int{1}, []int{0}},
		{"read-makes-recent", setup{chunks: []int{3, 1, 2}, touch: []int{0}, need: 3}, []int{0}, []int{1}},
		{"write-makes-recent", setup{chunks: []int{3, 1, 2}, touch: []int{0}, touchW: true, need: 3}, []int{0}, []int{1}},
		{"lru-evicts-two", setup{chunks: []int{1, 1, 4}, need: 4}, []int{2}, []int{0, 1}},
		{"lru-order-by-access", setup{chunks: []int{1, 1, 4}, touch: []int{2, 0}, need: 4}, []int{2}, []int{1, 2}},
		{"largest-tie-oldest-first", setup{chunks: []int{2, 2}, need: 5}, []int{0}, []int{0}},
		{"largest-tie-after-touch", setup{chunks: []int{2, 2}, touch: []int{0}, need: 5}, []int{1}, []int{1}},
		{"largest-two", setup{chunks: []int{3, 1, 3}, need: 7}, []int{0, 2}, []int{0, 1, 2}},
	} {
		for _, policy := range []spool.Policy{spool.LargestFirst, spool.LeastRecentlyUsed} {
			t.Run(tc.name+"/"+policy.String(), func(t *testing.T) {
				var events mtEvents
				m := mtManager(t, spool.Options{ChunkSize: mtCS, MemoryBudget: 8 * mtCS, Policy: policy, OnSpill: events.add})
				var bufs []*spool.Buffer
				var data [][]byte
				for i, n := range tc.s.chunks {
					b := mtBuffer(t, m)
					d := mtPattern(n*mtCS, uint64(i))
					mtWrite(t, b, d, 0)
					bufs, data = append(bufs, b), append(data, d)
				}
				for _, i := range tc.s.touch {
					if tc.s.touchW {
						mtWrite(t, bufs[i], data[i][:1], 0)
					} else if _, err := bufs[i].ReadAt(make([]byte, 1), 0); err != nil {
						t.Fatal(err)
					}
				}
				if ev := events.take(); len(ev) != 0 {
					t.Fatalf("spills during setup: %+v", ev)
				}
				before := m.Stats()
				w := mtBuffer(t, m)
				dw := mtPattern(tc.s.need*mtCS, 100)
				mtWrite(t, w, dw, 0)
				want := tc.largest
				if policy == spool.LeastRecentlyUsed {
					want = tc.leastUsed
				}
				// Victims give up chunks, in the policy's order, only as many
				// as the write lacks.
				var wantEv []spool.SpillEvent
				held := int64(0)
				for _, n := range tc.s.chunks {
					held += int64(n) * mtCS
				}
				lack := int64(tc.s.need)*mtCS - (8*mtCS - held) // the write's need less the budget's free part
				for _, i := range want {
					sz := int64(len(data[i]))
					moved := min(sz, lack)
					lack -= moved
					wantEv = append(wantEv, spool.SpillEvent{Buffer: bufs[i].ID(), Reason: spool.SpillEvicted, Size: sz, Moved: moved})
				}
				if lack != 0 {
					t.Fatalf("bad case: the victims listed free %d bytes too few", lack)
				}
				mtCheckEvents(t, events.take(), wantEv...)
				for i, b := range bufs {
					if got := b.OnDisk(); got != slices.Contains(want, i) {
						t.Errorf("buffer %d (%d chunks): OnDisk %v", i, tc.s.chunks[i], got)
					}
					mtWant(t, b, data[i])
				}
				if w.OnDisk() {
					t.Errorf("writing buffer went to disk")
				}
				mtWant(t, w, dw)
				st := m.Stats()
				if st.Evictions-before.Evictions != int64(len(want)) || st.Spills-before.Spills != int64(len(want)) ||
					st.BuffersOnDisk != len(want) {
					t.Errorf("stats %+v; want %d evictions", st, len(want))
				}
				mtCheckStatsSane(t, st, mtCS)
			})
		}
	}
}

func TestSpillReasons(t *testing.T) {
	newM := func(t *testing.T, opts spool.Options) (*spool.Manager, *mtEvents) {
		var events mtEvents
		opts.OnSpill = events.add
		return mtManager(t, opts), &events
	}
	t.Run("Requested", func(t *testing.T) {
		m, events := newM(t, mtMemoryOpts)
		b := mtBuffer(t, m)
		data := mtPattern(2*mtCS+5, 1)
		mtWrite(t, b, data, 0)
		mtMust(t, "Rollover", b.Rollover())
		mtCheckEvents(t, events.take(), spool.SpillEvent{Buffer: b.ID(), Reason: spool.SpillRequested, Size: int64(len(data)), Moved: int64(len(data))})
		// Rolling over again does nothing.
		mtMust(t, "second Rollover", b.Rollover())
		mtCheckEvents(t, events.take())
		if st := m.Stats(); st.Spills != 1 || st.SpilledBytes != int64(len(data)) || st.Evictions != 0 {
			t.Errorf("stats: %+v", st)
		}
		mtWant(t, b, data)
	})
	t.Run("Requested-empty", func(t *testing.T) {
		m, events := newM(t, mtMemoryOpts)
		b := mtBuffer(t, m)
		mtMust(t, "Rollover", b.Rollover())
		if !b.OnDisk() {
			t.Errorf("empty buffer not on disk after Rollover")
		}
		mtCheckEvents(t, events.take(), spool.SpillEvent{Buffer: b.ID(), Reason: spool.SpillRequested})
		mtWant(t, b, nil)
	})
	t.Run("Threshold", func(t *testing.T) {
		m, events := newM(t, spool.Options{ChunkSize: mtCS, MemoryBudget: 16 * mtCS, BufferThreshold: 10000})
		b := mtBuffer(t, m)
		data := mtPattern(10001, 2)
		mtWrite(t, b, data[:10000], 0)
		if b.OnDisk() {
			t.Fatalf("buffer of exactly BufferThreshold bytes went to disk")
		}
		mtCheckEvents(t, events.take())
		mtWrite(t, b, data[10000:], 10000)
		if !b.OnDisk() {
			t.Fatalf("buffer past BufferThreshold stayed in memory")
		}
		mtCheckEvents(t, events.take(), spool.SpillEvent{Buffer: b.ID(), Reason: spool.SpillThreshold, Size: 10000, Moved: 10000})
		mtWant(t, b, data)
	})
	t.Run("TooLarge", func(t *testing.T) {
		m, events := newM(t, spool.Options{ChunkSize: mtCS, MemoryBudget: 4 * mtCS})
		other := mtBuffer(t, m)
		mtWrite(t, other, []byte("keep me in memory"), 0)
		b := mtBuffer(t, m)
		data := mtPattern(4*mtCS+1, 3)
		if n, err := b.Write(data); n != len(data) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		if !b.OnDisk() {
			t.Fatalf("write larger than the budget stayed in memory")
		}
		mtCheckEvents(t, events.take(), spool.SpillEvent{Buffer: b.ID(), Reason: spool.SpillTooLarge})
		st := m.Stats()
		if other.OnDisk() || st.Evictions != 0 || st.MemoryInUse != 256 { // the smallest class
			t.Errorf("a write too large for the budget disturbed the other buffer: %+v", st)
		}
		mtWant(t, b, data)
	})
	t.Run("TooLarge-threshold-above-budget", func(t *testing.T) {
		m, events := newM(t, spool.Options{ChunkSize: mtCS, MemoryBudget: 4 * mtCS, BufferThreshold: 1 << 30})
		b := mtBuffer(t, m)
		mtWrite(t, b, mtPattern(4*mtCS, 4), 0)
		mtWrite(t, b, []byte{1}, 4*mtCS)
		mtCheckEvents(t, events.take(), spool.SpillEvent{Buffer: b.ID(), Reason: spool.SpillTooLarge, Size: 4 * mtCS, Moved: 4 * mtCS})
	})
	t.Run("Evicted", func(t *testing.T) {
		m, events := newM(t, spool.Options{ChunkSize: mtCS, MemoryBudget: 4 * mtCS})
		a, b := mtBuffer(t, m), mtBuffer(t, m)
		mtWrite(t, a, mtPattern(3*mtCS, 5), 0)
		mtWrite(t, b, mtPattern(2*mtCS, 6), 0)
		// One chunk of a: what b lacks.
		mtCheckEvents(t, events.take(), spool.SpillEvent{Buffer: a.ID(), Reason: spool.SpillEvicted, Size: 3 * mtCS, Moved: mtCS})
	})
	t.Run("Budget", testSpillBudget)
}

// testSpillBudget: a write that needs memory held by a buffer another
// goroutine is using at that moment must not wait for it: the writing
// buffer itself goes to disk (SpillBudget). Whether the other buffer is in
// use at the instant of the write depends on scheduling, so the test tries
// until it sees it happen.
func testSpillBudget(t *testing.T) {
	deadline := time.Now().Add(4 * time.Second)
	for attempt := 1; ; attempt++ {
		if time.Now().After(deadline) {
			t.Skipf("no SpillBudget rollover seen in %d attempts: the other buffer was never busy at the right instant", attempt)
		}
		var events mtEvents
		m := mtManager(t, spool.Options{ChunkSize: mtCS, MemoryBudget: 4 * mtCS, OnSpill: events.add})
		busy := mtBuffer(t, m)
		dBusy := mtPattern(3*mtCS, 7)
		mtWrite(t, busy, dBusy, 0)

		var stop atomic.Bool
		var wg sync.WaitGroup
		started := make(chan struct{}, 4)
		for g := 0; g < 3; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := make([]byte, 3*mtCS)
				first := true
				for !stop.Load() {
					if _, err := busy.ReadAt(p, 0); err != nil {
						t.Errorf("ReadAt: %v", err)
						return
					}
					if first {
						started <- struct{}{}
						first = false
					}
				}
			}()
		}
		for g := 0; g < 3; g++ {
			<-started
		}
		w := mtBuffer(t, m)
		dW := mtPattern(2*mtCS, 8)
		mtWrite(t, w, dW, 0)
		stop.Store(true)
		wg.Wait()

		evs := events.take()
		mtWant(t, w, dW)
		mtWant(t, busy, dBusy)
		if len(evs) != 1 {
			t.Fatalf("got events %+v; want exactly one", evs)
		}
		if evs[0].Reason == spool.SpillEvicted {
			// The readers left the buffer alone for an instant: try again.
			mtCheckEvents(t, evs, spool.SpillEvent{Buffer: busy.ID(), Reason: spool.SpillEvicted, Size: 3 * mtCS, Moved: 3 * mtCS})
			mtMust(t, "Manager.Close", m.Close())
			continue
		}
		mtCheckEvents(t, evs, spool.SpillEvent{Buffer: w.ID(), Reason: spool.SpillBudget})
		if !w.OnDisk() || busy.OnDisk() {
			t.Errorf("writer on disk %v, busy buffer on disk %v; want true, false", w.OnDisk(), busy.OnDisk())
		}
		st := m.Stats()
		if st.Evictions != 0 || st.Spills != 1 || st.MemoryInUse != 3*mtCS {
			t.Errorf("stats: %+v", st)
		}
		t.Logf("SpillBudget seen after %d attempts", attempt)
		return
	}
}

func TestBufferThresholdBoundary(t *testing.T) {
	const thr = 10000
	opts := spool.Options{ChunkSize: mtCS, MemoryBudget: 16 * mtCS, BufferThreshold: thr}
	for _, tc := range []struct {
		name   string
		at     func(t *testing.T, b *spool.Buffer) // brings the size to exactly thr
		past   func(t *testing.T, b *spool.Buffer) // then past it by one byte
		moved  int64
		sizeAt int64
	}{
		{"Write",
			func(t *testing.T, b *spool.Buffer) {
				if n, err := b.Write(mtPattern(thr, 1)); n != thr || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			},
			func(t *testing.T, b *spool.Buffer) { mtMust(t, "WriteByte", b.WriteByte(1)) },
			thr, thr},
		{"WriteAt",
			func(t *testing.T, b *spool.Buffer) { mtWrite(t, b, []byte{1}, thr-1) },
			func(t *testing.T, b *spool.Buffer) { mtWrite(t, b, []byte{1}, thr) },
			thr - 2*mtCS, thr}, // only the last chunk is held: bytes 8192..9999
		{"Truncate then WriteAt",
			func(t *testing.T, b *spool.Buffer) { mtMust(t, "Truncate", b.Truncate(thr)) },
			func(t *testing.T, b *spool.Buffer) {
				// Growing past the threshold with Truncate adds a hole and
				// keeps the buffer in memory; the write that ends past it
				// takes it to disk.
				mtMust(t, "Truncate", b.Truncate(thr+1))
				if b.OnDisk() {
					t.Fatal("Truncate past the threshold rolled the buffer over")
				}
				mtWrite(t, b, []byte{0}, thr)
			},
			0, thr + 1},
		{"ReadFrom",
			func(t *testing.T, b *spool.Buffer) {
				if n, err := b.ReadFrom(bytes.NewReader(mtPattern(thr, 2))); n != thr || err != nil {
					t.Fatalf("ReadFrom = %d, %v", n, err)
				}
			},
			func(t *testing.T, b *spool.Buffer) {
				if n, err := b.WriteString("x"); n != 1 || err != nil {
					t.Fatalf("WriteString = %d, %v", n, err)
				}
			},
			thr, thr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var events mtEvents
			o := opts
			o.OnSpill = events.add
			m := mtManager(t, o)
			b := mtBuffer(t, m)
			tc.at(t, b)
			if b.Size() != thr || b.OnDisk() {
				t.Fatalf("size %d, on disk %v; want %d in memory", b.Size(), b.OnDisk(), thr)
			}
			if st := m.Stats(); st.Spills != 0 || st.BuffersOnDisk != 0 {
				t.Fatalf("stats at the threshold: %+v", st)
			}
			tc.past(t, b)
			if b.Size() != thr+1 || !b.OnDisk() {
				t.Fatalf("size %d, on disk %v; want %d on disk", b.Size(), b.OnDisk(), thr+1)
			}
			mtCheckEvents(t, events.take(), spool.SpillEvent{Buffer: b.ID(), Reason: spool.SpillThreshold, Size: tc.sizeAt, Moved: tc.moved})
			if st := m.Stats(); st.MemoryInUse != 0 || st.Spills != 1 || st.BuffersOnDisk != 1 || st.SpilledBytes != tc.moved {
				t.Errorf("stats past the threshold: %+v", st)
			}
		})
	}
}

func TestWriteLargerThanBudget(t *testing.T) {
	for _, size := range []int{4*mtCS + 1, 10 * mtCS, 1 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			var events mtEvents
			m := mtManager(t, spool.Options{ChunkSize: mtCS, MemoryBudget: 4 * mtCS, OnSpill: events.add})
			b := mtBuffer(t, m)
			data := mtPattern(size, uint64(size))
			var maxMem int64
			// Write in pieces through ReadFrom, and check the budget
			// between pieces via a reader that looks at Stats.
			r := &mtStatsReader{r: bytes.NewReader(data), m: m, max: &maxMem}
			if n, err := b.ReadFrom(r); n != int64(size) || err != nil {
				t.Fatalf("ReadFrom = %d, %v", n, err)
			}
			if maxMem > 4*mtCS {
				t.Errorf("MemoryInUse reached %d, budget %d", maxMem, 4*mtCS)
			}
			if !b.OnDisk() {
				t.Fatalf("buffer larger than the budget in memory")
			}
			if st := m.Stats(); st.MemoryInUse != 0 || st.BuffersOnDisk != 1 || st.DiskLive != int64(size) ||
				st.DiskInUse < int64(size) || st.DiskInUse > mtRoundUp(int64(size), mtCS) {
				t.Errorf("stats: %+v", st)
			}
			// ReadFrom's stage is budget memory too, so the buffer may run
			// out of budget (SpillBudget) before it outgrows it.
			evs := events.take()
			if len(evs) != 1 || evs[0].Buffer != b.ID() || (evs[0].Reason != spool.SpillTooLarge && evs[0].Reason != spool.SpillBudget) {
				t.Errorf("events %+v; want one TooLarge or Budget", evs)
			}
			mtWant(t, b, data)

			// A single Write of the whole data, on a fresh buffer.
			b2 := mtBuffer(t, m)
			if n, err := b2.Write(data); n != size || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
			if !b2.OnDisk() || m.Stats().MemoryInUse != 0 {
				t.Errorf("single Write larger than the budget: on disk %v, stats %+v", b2.OnDisk(), m.Stats())
			}
			mtCheckEvents(t, events.take(), spool.SpillEvent{Buffer: b2.ID(), Reason: spool.SpillTooLarge})
			mtWant(t, b2, data)
		})
	}
}

// mtStatsReader records the largest MemoryInUse seen between Reads.
type mtStatsReader struct {
	r   io.Reader
	m   *spool.Manager
	max *int64
}

func (s *mtStatsReader) Read(p []byte) (int, error) {
	if mem := s.m.Stats().MemoryInUse; mem > *s.max {
		*s.max = mem
	}
	if len(p) > 5000 {
		p = p[:5000]
	}
	return s.r.Read(p)
}

func TestRolloverFreesMemory(t *testing.T) {
	m := mtManager(t, mtMemoryOpts)
	var bufs []*spool.Buffer
	var data [][]byte
	var held []int64 // memory each buffer holds
	for i := 0; i < 4; i++ {
		b := mtBuffer(t, m)
		d := mtPattern((i+1)*mtCS+i*100, uint64(i))
		before := m.Stats().MemoryInUse
		mtWrite(t, b, d, 0)
		h := m.Stats().MemoryInUse - before
		if h < int64(len(d)) || h > int64(len(d))*5/4 {
			t.Errorf("buffer %d of %d bytes holds %d bytes of memory", i, len(d), h)
		}
		bufs, data, held = append(bufs, b), append(data, d), append(held, h)
	}
	// A hole at the end takes no memory and moves nothing.
	mtMust(t, "Truncate", bufs[0].Truncate(10*mtCS))
	data[0] = append(data[0], make([]byte, 10*mtCS-len(data[0]))...)
	var spilled int64
	for i, b := range bufs {
		before := m.Stats()
		mtMust(t, "Rollover", b.Rollover())
		after := m.Stats()
		if after.MemoryInUse > before.MemoryInUse || before.MemoryInUse-after.MemoryInUse != held[i] {
			t.Errorf("buffer %d: MemoryInUse %d -> %d, want a fall of %d", i, before.MemoryInUse, after.MemoryInUse, held[i])
		}
		spilled += int64(min(len(data[i]), (i+1)*mtCS+i*100))
		if after.SpilledBytes != spilled || after.BuffersOnDisk != i+1 || after.Spills != int64(i+1) {
			t.Errorf("buffer %d: stats %+v; want SpilledBytes %d", i, after, spilled)
		}
	}
	if st := m.Stats(); st.MemoryInUse != 0 {
		t.Errorf("MemoryInUse %d after all buffers rolled over", st.MemoryInUse)
	}
	for i, b := range bufs {
		mtWant(t, b, data[i])
	}
}

// TestOnSpillReentrant: OnSpill may call any method of the Manager and its
// buffers, including of the buffer that rolled over and of the one whose
// write caused it.
func TestOnSpillReentrant(t *testing.T) {
	var (
		mu     sync.Mutex
		byID   = map[uint64]*spool.Buffer{}
		m      *spool.Manager
		calls  int
		inside atomic.Int32
		fail   = make(chan string, 100)
	)
	failf := func(format string, args ...any) {
		select {
		case fail <- fmt.Sprintf(format, args...):
		default:
		}
	}
	onSpill := func(ev spool.SpillEvent) {
		if inside.Add(1) > 3 {
			inside.Add(-1)
			return
		}
		defer inside.Add(-1)
		mu.Lock()
		b := byID[ev.Buffer]
		calls++
		mu.Unlock()
		if b == nil {
			failf("event for unknown buffer %d", ev.Buffer)
			return
		}
		if ev.Err != nil {
			failf("event with error: %v", ev.Err)
		}
		if !b.OnDisk() {
			failf("buffer %d not on disk in its OnSpill", ev.Buffer)
		}
		size := b.Size()
		p := make([]byte, 10)
		if _, err := b.ReadAt(p, 0); err != nil && err != io.EOF {
			failf("ReadAt in OnSpill: %v", err)
		}
		if _, err := b.Seek(0, io.SeekCurrent); err != nil {
			failf("Seek in OnSpill: %v", err)
		}
		// Write to the spilled buffer (past its end, so the data the
		// test checks is left alone), then take it back.
		if _, err := b.WriteAt([]byte("cb"), size+100); err != nil {
			failf("WriteAt in OnSpill: %v", err)
		}
		if err := b.Truncate(size); err != nil {
			failf("Truncate in OnSpill: %v", err)
		}
		if err := b.Rollover(); err != nil {
			failf("Rollover in OnSpill: %v", err)
		}
		_ = m.Stats()
		nb, err := m.NewBuffer()
		if err != nil {
			failf("NewBuffer in OnSpill: %v", err)
			return
		}
		mu.Lock()
		byID[nb.ID()] = nb
		mu.Unlock()
		// This write may itself evict others and call OnSpill again.
		if _, err := nb.Write(mtPattern(2*mtCS, 1)); err != nil {
			failf("Write in OnSpill: %v", err)
		}
		if err := nb.Close(); err != nil {
			failf("Close in OnSpill: %v", err)
		}
	}
	var err error
	m, err = spool.NewManager(spool.Options{ChunkSize: mtCS, MemoryBudget: 4 * mtCS, BufferThreshold: 3 * mtCS, TempDir: t.TempDir(), OnSpill: onSpill})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	done := make(chan struct{})
	go func() {
		defer close(done)
		var bufs []*spool.Buffer
		var data [][]byte
		for i := 0; i < 6; i++ {
			b, err := m.NewBuffer()
			if err != nil {
				failf("NewBuffer: %v", err)
				return
			}
			mu.Lock()
			byID[b.ID()] = b
			mu.Unlock()
			d := mtPattern((i%4+1)*mtCS-i, uint64(i))
			if n, err := b.Write(d); n != len(d) || err != nil {
				failf("Write: %d, %v", n, err)
			}
			bufs, data = append(bufs, b), append(data, d)
		}
		mtMustNot := func(what string, err error) {
			if err != nil {
				failf("%s: %v", what, err)
			}
		}
		mtMustNot("Rollover", bufs[0].Rollover())
		for i, b := range bufs {
			got := make([]byte, len(data[i]))
			if n, err := b.ReadAt(got, 0); n != len(got) || err != nil || !bytes.Equal(got, data[i]) {
				failf("buffer %d: content wrong after spills (%d, %v)", i, n, err)
			}
			mtMustNot("Close", b.Close())
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("deadlock: operations with OnSpill calling back did not finish\n%s", buf)
	}
	close(fail)
	for msg := range fail {
		t.Error(msg)
	}
	if calls == 0 {
		t.Errorf("OnSpill never called")
	}
}

// TestStatsConsistency runs random operations on several buffers and checks
// that Stats agree with the OnSpill events and the buffers' state.
func TestStatsConsistency(t *testing.T) {
	for _, policy := range []spool.Policy{spool.LargestFirst, spool.LeastRecentlyUsed} {
		t.Run(policy.String(), func(t *testing.T) {
			var events mtEvents
			const budget = 12 * mtCS
			m := mtManager(t, spool.Options{ChunkSize: mtCS, MemoryBudget: budget, BufferThreshold: 7 * mtCS, Policy: policy, OnSpill: events.add})
			r := rand.New(rand.NewPCG(uint64(policy)+1, 3))
			type entry struct {
				b    *spool.Buffer
				data []byte
			}
			var live []*entry
			for i := 0; i < 5; i++ {
				live = append(live, &entry{b: mtBuffer(t, m)})
			}
			var spills, evictions, moved int64
			for step := 0; step < 1500; step++ {
				e := live[r.IntN(len(live))]
				before := m.Stats()
				switch k := r.IntN(100); {
				case k < 60:
					off := r.Int64N(6 * mtCS)
					p := mtPattern(r.IntN(3*mtCS/2), r.Uint64())
					mtWrite(t, e.b, p, off)
					if need := int(off) + len(p); need > len(e.data) && len(p) > 0 {
						e.data = append(e.data, make([]byte, need-len(e.data))...)
					}
					copy(e.data[off:], p)
				case k < 72:
					size := r.Int64N(7 * mtCS)
					mtMust(t, "Truncate", e.b.Truncate(size))
					if size < int64(len(e.data)) {
						e.data = e.data[:size]
					} else {
						e.data = append(e.data, make([]byte, size-int64(len(e.data)))...)
					}
				case k < 75:
					mtMust(t, "Rollover", e.b.Rollover())
					if after := m.Stats(); after.MemoryInUse > before.MemoryInUse {
						t.Fatalf("Rollover raised MemoryInUse from %d to %d", before.MemoryInUse, after.MemoryInUse)
					}
				case k < 82:
					mtMust(t, "Close", e.b.Close())
					i := slices.Index(live, e)
					live[i] = &entry{b: mtBuffer(t, m)}
					if after := m.Stats(); after.MemoryInUse > before.MemoryInUse || after.DiskInUse > before.DiskInUse {
						t.Fatalf("Close raised use: %+v -> %+v", before, after)
					}
				default:
					got := mtContent(t, e.b)
					if !bytes.Equal(got, e.data) {
						t.Fatalf("step %d: content differs at %d", step, mtFirstDiff(got, e.data))
					}
				}
				for _, ev := range events.take() {
					if ev.Err != nil || ev.Moved < 0 || ev.Moved > ev.Size {
						t.Fatalf("bad event %+v", ev)
					}
					spills++
					moved += ev.Moved
					if ev.Reason == spool.SpillEvicted {
						evictions++
					}
					if ev.Reason < spool.SpillRequested || ev.Reason > spool.SpillEvicted {
						t.Fatalf("event with unknown reason: %+v", ev)
					}
				}
				st := m.Stats()
				mtCheckStatsSane(t, st, mtCS)
				onDisk, sizeOnDisk := 0, int64(0)
				for _, e := range live {
					if e.b.OnDisk() {
						onDisk++
						sizeOnDisk += mtDiskBound(m, e.b.Size(), mtCS) // extents of at most a chunk per block
					}
				}
				if st.Spills != spills || st.Evictions != evictions || st.SpilledBytes != moved || st.SpillErrors != 0 ||
					st.Buffers != len(live) || st.BuffersOnDisk != onDisk || st.DiskInUse-spool.ArenaSlack(m) > sizeOnDisk || st.MemoryBudget != budget {
					t.Fatalf("step %d: stats %+v; events say spills %d, evictions %d, moved %d; %d buffers, %d on disk holding %d bytes",
						step, st, spills, evictions, moved, len(live), onDisk, sizeOnDisk)
				}
			}
			for _, e := range live {
				mtWant(t, e.b, e.data)
			}
			if evictions == 0 || spills == evictions {
				t.Errorf("test did not exercise both evictions and other spills (%d spills, %d evictions)", spills, evictions)
			}
			t.Logf("%d spills, %d of them evictions", spills, evictions)
		})
	}
}

// ---------------------------------------------------------------------------
// archive/zip

func TestZipRoundTrip(t *testing.T) {
	files := []struct {
		name string
		data []byte
	}{
		{"empty.txt", nil},
		{"small.txt", []byte("hello, zip")},
		{"text.txt", bytes.Repeat([]byte("spool spills to disk. "), 3000)},
		{"random.bin", mtPattern(50000, 1)},
		{"dir/nested.bin", mtPattern(9000, 2)},
		{"stored.bin", mtPattern(20000, 3)},
	}
	for _, tc := range []struct {
		name     string
		opts     spool.Options
		rollover bool
		wantDisk bool
	}{
		{"memory", mtMemoryOpts, false, false},
		{"tiny-budget", mtTinyOpts, false, true},
		{"memory-then-rollover", mtMemoryOpts, true, true},
		{"tiny-budget-then-rollover", mtTinyOpts, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var events mtEvents
			opts := tc.opts
			opts.OnSpill = events.add
			m := mtManager(t, opts)
			b := mtBuffer(t, m)
			zw := zip.NewWriter(b)
			sawMemory := false
			for _, f := range files {
				method := zip.Deflate
				if f.name == "stored.bin" {
					method = zip.Store
				}
				w, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: method})
				mtMust(t, "Create "+f.name, err)
				if _, err := w.Write(f.data); err != nil {
					t.Fatalf("writing %s: %v", f.name, err)
				}
				// zip.Writer buffers its output: push it to b.
				mtMust(t, "zip Flush", zw.Flush())
				if !b.OnDisk() && b.Size() > 0 {
					sawMemory = true
				}
			}
			mtMust(t, "zip Close", zw.Close())
			if tc.rollover {
				mtMust(t, "Rollover", b.Rollover())
			}
			if b.OnDisk() != tc.wantDisk {
				t.Errorf("OnDisk %v, want %v", b.OnDisk(), tc.wantDisk)
			}
			if tc.name == "tiny-budget" {
				// The archive must have started in memory and rolled over
				// midway, by itself.
				evs := events.all()
				if !sawMemory || len(evs) != 1 || evs[0].Reason != spool.SpillThreshold || evs[0].Moved == 0 {
					t.Errorf("no rollover midway: saw memory %v, events %+v", sawMemory, evs)
				}
			}
			zr, err := zip.NewReader(b, b.Size())
			if err != nil {
				t.Fatalf("zip.NewReader: %v", err)
			}
			if len(zr.File) != len(files) {
				t.Fatalf("archive has %d files, want %d", len(zr.File), len(files))
			}
			for i, zf := range zr.File {
				if zf.Name != files[i].name {
					t.Errorf("file %d named %q, want %q", i, zf.Name, files[i].name)
				}
				rc, err := zf.Open()
				if err != nil {
					t.Fatalf("open %s: %v", zf.Name, err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatalf("read %s: %v", zf.Name, err)
				}
				if !bytes.Equal(got, files[i].data) {
					t.Errorf("%s: content differs", zf.Name)
				}
			}
		})
	}
}
