package spool_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolkit/spool"
)

// Soak parameters: a budget of 16 chunks of 4 KiB for hundreds of buffers
// of up to 32 KiB, so nearly every write to a buffer in memory evicts
// another one.
const (
	soakChunk      = 4096
	soakBudget     = 16 * soakChunk
	soakMaxSize    = 32 << 10 // private buffers stay at or below this size
	soakMaxWrite   = 5000
	soakMaxRead    = 8000
	soakShared     = 4
	soakSharedSize = 20 << 10
)

var soakTable = crc32.MakeTable(crc32.Castagnoli)

type soakConfig struct {
	goroutines int
	ops        int // per goroutine
	encrypt    bool
	policy     spool.Policy
}

// TestSoak runs hundreds of goroutines, each with a private buffer on which
// it runs a random, seeded sequence of Write, WriteAt, Truncate, Rollover
// and checked ReadAt operations against a model, while all of them read,
// roll over and size a few shared buffers, under a budget so small that
// eviction never stops. A sampler checks the budget invariant throughout
// and a watchdog turns a deadlock into a stack dump. At the end every
// buffer is checked whole against its model, and after Close nothing is
// left.
func TestSoak(t *testing.T) {
	plain := soakConfig{goroutines: sized(60, 100, 300), ops: sized(300, 200, 300), policy: spool.LargestFirst}
	enc := soakConfig{goroutines: sized(20, 40, 100), ops: sized(250, 200, 250), encrypt: true, policy: spool.LeastRecentlyUsed}
	t.Run("plain", func(t *testing.T) { testSoak(t, plain) })
	t.Run("encrypted", func(t *testing.T) { testSoak(t, enc) })
}

// soakWorker owns one private buffer and its model.
type soakWorker struct {
	t      *testing.T
	m      *spool.Manager
	id     int
	rng    *rand.Rand
	b      *spool.Buffer
	md     model
	shared []*spool.Buffer
	want   [][]byte // content of the shared buffers, never changed

	wbuf, rbuf []byte
	crc        uint32 // running CRC-32C of every private byte checked
	ops        int64
	checks     int64 // ReadAt and whole-buffer checks that passed
	recycles   int64
	failures   int64
}

func (w *soakWorker) fail(format string, args ...any) {
	w.failures++
	if w.failures <= 3 {
		w.t.Errorf("goroutine %d, op %d: "+format, append([]any{w.id, w.ops}, args...)...)
	}
}

// data returns n random bytes, none of them zero so that holes show.
func (w *soakWorker) data(n int) []byte {
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(w.wbuf[i:], w.rng.Uint64()|0x0101010101010101)
	}
	return w.wbuf[:n]
}

// seekIfNeeded moves the offset so that a Write of n bytes stays within
// soakMaxSize.
func (w *soakWorker) seekIfNeeded(n int) {
	if w.md.off+int64(n) <= soakMaxSize {
		return
	}
	off := w.rng.Int64N(soakMaxSize - int64(n) + 1)
	if pos, err := w.b.Seek(off, io.SeekStart); pos != off || err != nil {
		w.fail("Seek(%d) = %d, %v", off, pos, err)
	}
	w.md.off = off
}

// checkRange compares ReadAt(n, off) of the private buffer with the model.
func (w *soakWorker) checkRange(n int, off int64) {
	p := w.rbuf[:n]
	got, err := w.b.ReadAt(p, off)
	want, werr := w.md.readAt(n, off)
	if got != len(want) || err != werr {
		w.fail("ReadAt(%d, %d) = %d, %v; want %d, %v (size %d)", n, off, got, err, len(want), werr, len(w.md.data))
		return
	}
	if crc32.Checksum(p[:got], soakTable) != crc32.Checksum(want, soakTable) {
		w.fail("ReadAt(%d, %d): content differs from the model at byte %d (size %d)", n, off, off+int64(soakFirstDiff(p[:got], want)), len(w.md.data))
		return
	}
	w.crc = crc32.Update(w.crc, soakTable, p[:got])
	w.checks++
}

// checkAll compares the whole private buffer with the model, by checksum.
func (w *soakWorker) checkAll() bool {
	size := int64(len(w.md.data))
	if s := w.b.Size(); s != size {
		w.fail("Size = %d, want %d", s, size)
		return false
	}
	p := w.rbuf[:size+1]
	n, err := w.b.ReadAt(p, 0)
	if int64(n) != size || err != io.EOF {
		w.fail("ReadAt(all) = %d, %v; want %d, EOF", n, err, size)
		return false
	}
	if crc32.Checksum(p[:n], soakTable) != crc32.Checksum(w.md.data, soakTable) {
		w.fail("whole buffer differs from the model at byte %d of %d", soakFirstDiff(p[:n], w.md.data), size)
		return false
	}
	w.crc = crc32.Update(w.crc, soakTable, p[:n])
	w.checks++
	return true
}

func soakFirstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func (w *soakWorker) step() {
	w.ops++
	b, md := w.b, &w.md
	switch op := w.rng.IntN(20); {
	case op < 4: // Write at the offset
		p := w.data(1 + w.rng.IntN(soakMaxWrite))
		w.seekIfNeeded(len(p))
		n, err := b.Write(p)
		if n != len(p) || err != nil {
			w.fail("Write(%d) at %d = %d, %v", len(p), md.off, n, err)
		}
		md.writeAt(p[:n], md.off)
		md.off += int64(n)
	case op < 7: // WriteAt
		p := w.data(1 + w.rng.IntN(soakMaxWrite))
		off := w.rng.Int64N(soakMaxSize - int64(len(p)) + 1)
		n, err := b.WriteAt(p, off)
		if n != len(p) || err != nil {
			w.fail("WriteAt(%d, %d) = %d, %v", len(p), off, n, err)
		}
		md.writeAt(p[:n], off)
	case op < 9: // Truncate, shrinking more often than growing
		size := w.rng.Int64N(soakMaxSize + 1)
		if w.rng.IntN(3) > 0 {
			size = w.rng.Int64N(int64(len(md.data)) + 1)
		}
		if err := b.Truncate(size); err != nil {
			w.fail("Truncate(%d) = %v", size, err)
			return
		}
		md.truncate(size)
	case op < 10: // Rollover
		if err := b.Rollover(); err != nil {
			w.fail("Rollover = %v", err)
		}
		if !b.OnDisk() {
			w.fail("OnDisk = false after Rollover")
		}
	case op < 14: // ReadAt, checked
		w.checkRange(1+w.rng.IntN(soakMaxRead), w.rng.Int64N(soakMaxSize+1))
	case op < 15: // the whole buffer, checked
		w.checkAll()
	case op < 17:
		// Check, Close and start again: a buffer on disk stays there, so
		// only new buffers keep the budget under pressure. Buffers in
		// memory are recycled too, so that the sequence of operations
		// does not depend on the interleaving: the digest is reproducible.
		w.checkAll()
		if err := b.Close(); err != nil {
			w.fail("Close = %v", err)
		}
		nb, err := w.m.NewBuffer()
		if err != nil {
			w.fail("NewBuffer = %v", err)
			return
		}
		w.b, w.md = nb, model{}
		w.recycles++
	default: // a shared buffer: ReadAt, Rollover or Size, from everyone
		i := w.rng.IntN(len(w.shared))
		s, want := w.shared[i], w.want[i]
		switch w.rng.IntN(8) {
		case 0:
			if err := s.Rollover(); err != nil {
				w.fail("shared %d: Rollover = %v", i, err)
			}
		case 1:
			if got := s.Size(); got != int64(len(want)) {
				w.fail("shared %d: Size = %d, want %d", i, got, len(want))
			}
		default:
			n := 1 + w.rng.IntN(soakMaxRead)
			off := w.rng.Int64N(int64(len(want)) + 1)
			p := w.rbuf[:n]
			got, err := s.ReadAt(p, off)
			end := min(off+int64(n), int64(len(want)))
			var werr error
			if end-off < int64(n) {
				werr = io.EOF
			}
			if int64(got) != end-off || err != werr || !bytes.Equal(p[:got], want[off:end]) {
				w.fail("shared %d: ReadAt(%d, %d) = %d, %v; want %d, %v (equal %v)", i, n, off, got, err, end-off, werr, bytes.Equal(p[:got], want[off:end]))
				return
			}
			w.checks++
		}
	}
}

func testSoak(t *testing.T, cfg soakConfig) {
	start := time.Now()
	dir := t.TempDir()
	fds := openFDs(t)
	defer watchdog(t, 3*time.Minute)()

	var spillEvents, spillErrs atomic.Int64
	var reasons [spool.SpillSparse + 1]atomic.Int64
	m, err := spool.NewManager(spool.Options{
		MemoryBudget: soakBudget,
		ChunkSize:    soakChunk,
		TempDir:      dir,
		EncryptSpill: cfg.encrypt,
		Policy:       cfg.policy,
		OnSpill: func(e spool.SpillEvent) {
			spillEvents.Add(1)
			if e.Reason > 0 && e.Reason < spool.SpillReason(len(reasons)) {
				reasons[e.Reason].Add(1)
			}
			if e.Err != nil {
				spillErrs.Add(1)
				t.Errorf("spill event with error: %+v", e)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	spool.SetPoison(m, 0xEE)

	shared := make([]*spool.Buffer, soakShared)
	want := make([][]byte, soakShared)
	for i := range shared {
		if shared[i], err = m.NewBuffer(); err != nil {
			t.Fatal(err)
		}
		want[i] = randBytes(uint64(1000+i), soakSharedSize)
		if n, err := shared[i].Write(want[i]); n != len(want[i]) || err != nil {
			t.Fatalf("shared %d: Write = %d, %v", i, n, err)
		}
	}

	smp := startSampler(m)
	ws := make([]*soakWorker, cfg.goroutines)
	for g := range ws {
		b, err := m.NewBuffer()
		if err != nil {
			t.Fatal(err)
		}
		ws[g] = &soakWorker{
			t: t, m: m, id: g, b: b,
			rng:    rand.New(rand.NewPCG(uint64(g), 0x50a4)),
			shared: shared, want: want,
			wbuf: make([]byte, soakMaxWrite+8),
			rbuf: make([]byte, max(soakMaxRead, soakMaxSize+1)),
		}
	}
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			for range cfg.ops {
				w.step()
			}
		})
	}
	wg.Wait()
	smp.finish(t, soakBudget)

	// Every buffer, whole, against its model.
	var ops, checks, recycles, failures int64
	var digest uint32
	for _, w := range ws {
		w.checkAll()
		ops += w.ops
		checks += w.checks
		recycles += w.recycles
		failures += w.failures
		digest ^= w.crc
	}
	for i, s := range shared {
		got := make([]byte, len(want[i])+1)
		n, err := s.ReadAt(got, 0)
		if n != len(want[i]) || err != io.EOF || crc32.Checksum(got[:n], soakTable) != crc32.Checksum(want[i], soakTable) {
			failures++
			t.Errorf("shared %d at the end: ReadAt(all) = %d, %v; content differs from what was written", i, n, err)
		}
	}

	st := m.Stats()
	t.Logf("%d goroutines, %d operations (%d checks passed, %d buffers recycled), encrypt=%v, policy %v, %v",
		cfg.goroutines, ops, checks, recycles, cfg.encrypt, cfg.policy, time.Since(start).Round(time.Millisecond))
	t.Logf("spills %d (evictions %d, errors %d), spilled %d bytes, disk written %d bytes, OnSpill calls %d; digest of checked bytes %08x",
		st.Spills, st.Evictions, st.SpillErrors, st.SpilledBytes, st.DiskWritten, spillEvents.Load(), digest)
	var byReason []string
	for r := range reasons {
		if n := reasons[r].Load(); n > 0 {
			byReason = append(byReason, fmt.Sprintf("%v %d", spool.SpillReason(r), n))
		}
	}
	t.Logf("spill events by reason: %s", strings.Join(byReason, ", "))
	if st.Evictions == 0 {
		t.Errorf("no evictions (%+v): the budget is not under pressure", st)
	}
	if got := spillEvents.Load(); got != st.Spills+st.SpillErrors {
		t.Errorf("OnSpill called %d times, Stats: %d spills + %d errors", got, st.Spills, st.SpillErrors)
	}
	if err := spool.CheckHolding(m); err != nil {
		t.Error(err)
	}
	if failures == 0 && spillErrs.Load() == 0 && !t.Failed() {
		t.Logf("data lost: 0")
	} else {
		t.Errorf("data lost or wrong: %d failed checks, %d spill errors", failures, spillErrs.Load())
	}

	if err := m.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	checkEmpty(t, m, dir, fds)
}
