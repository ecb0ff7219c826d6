package spool_test

import (
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/spoolkit/spool"
)

func lfuManager(t *testing.T, chunks int64, opts spool.Options) *spool.Manager {
	t.Helper()
	opts.MemoryBudget = chunks * 4096
	opts.ChunkSize = 4096
	opts.Policy = spool.LeastFrequentlyUsed
	if opts.TempDir == "" {
		opts.TempDir = t.TempDir()
	}
	m, err := spool.NewManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func filled(t *testing.T, m *spool.Manager, n int, seed uint64) (*spool.Buffer, []byte) {
	t.Helper()
	b, err := m.NewBuffer()
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(seed, n)
	if _, err := b.Write(data); err != nil {
		t.Fatal(err)
	}
	return b, data
}

func readN(t *testing.T, b *spool.Buffer, times int) {
	t.Helper()
	p := make([]byte, 100)
	for range times {
		if _, err := b.ReadAt(p, 0); err != nil && err != io.EOF {
			t.Fatal(err)
		}
	}
}

// TestLFUOrder: under memory pressure, LeastFrequentlyUsed rolls over the
// buffer whose memory buys the fewest reads: here the large, rarely read
// one, before a small hot one and a medium one read now and then, and the
// medium one before the small hot one.
func TestLFUOrder(t *testing.T) {
	var order []uint64
	m := lfuManager(t, 16, spool.Options{DisablePromotion: true, OnSpill: func(e spool.SpillEvent) { order = append(order, e.Buffer) }})
	big, _ := filled(t, m, 8*4096, 1)   // 8 chunks, read twice
	small, _ := filled(t, m, 2*4096, 2) // 2 chunks, read 50 times
	mid, _ := filled(t, m, 4*4096, 3)   // 4 chunks, read 10 times
	readN(t, big, 2)
	readN(t, small, 50)
	readN(t, mid, 10)
	w, _ := m.NewBuffer()
	readN(t, w, 100) // the writer is hot itself, so it may displace any of them
	for i := range 3 {
		if _, err := w.Write(randBytes(uint64(10+i), 6*4096)); err != nil {
			t.Fatal(err)
		}
	}
	// A victim may give up its chunks over several writes: the order of
	// first rollovers.
	order = slices.Compact(order)
	want := []uint64{big.ID(), mid.ID()}
	if len(order) < 2 || order[0] != want[0] || order[1] != want[1] {
		t.Fatalf("rolled over %v; want big (%d) first, then mid (%d)", order, big.ID(), mid.ID())
	}
	if small.OnDisk() {
		t.Error("the small hot buffer was rolled over")
	}
}

// TestLFUScanResistance: a hot set in memory, then a one-pass stream of
// large cold uploads through the same Manager: the uploads go to disk
// themselves (SpillBudget) and the hot set stays in memory.
func TestLFUScanResistance(t *testing.T) {
	var reasons = map[spool.SpillReason]int{}
	m := lfuManager(t, 32, spool.Options{OnSpill: func(e spool.SpillEvent) { reasons[e.Reason]++ }})
	var hot []*spool.Buffer
	for i := range 6 {
		b, _ := filled(t, m, 4*4096, uint64(i))
		readN(t, b, 20)
		hot = append(hot, b)
	}
	for i := range 20 { // 20 uploads of 64 KiB: 10 budgets' worth
		up, _ := m.NewBuffer()
		for j := range 16 {
			if _, err := up.Write(randBytes(uint64(100+i*16+j), 4096)); err != nil {
				t.Fatal(err)
			}
		}
		up.Seek(0, io.SeekStart)
		io.Copy(io.Discard, up) // read back once, as an upload handler would
		up.Close()
	}
	for i, b := range hot {
		if b.OnDisk() {
			t.Errorf("hot buffer %d was flushed to disk by the scan", i)
		}
	}
	if reasons[spool.SpillBudget] == 0 {
		t.Errorf("spill reasons %v: the uploads did not go to disk themselves", reasons)
	}
}

// waitFor calls cond until it is true, doing work between calls, and fails
// the test if that takes longer than a minute (a generous bound on a
// loaded machine; no fixed sleeps).
func waitFor(t *testing.T, what string, work func(), cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		work()
	}
}

// TestCloseFromOnPromote: OnPromote may call any method, Manager.Close
// included. Close waits for the promoter goroutine to stop, and OnPromote
// runs on that goroutine: Close must not wait for itself.
func TestCloseFromOnPromote(t *testing.T) {
	closed := make(chan error, 1)
	var m *spool.Manager
	m = lfuManager(t, 64, spool.Options{OnPromote: func(spool.PromoteEvent) { closed <- m.Close() }})
	b, _ := filled(t, m, 5*4096, 8)
	if err := b.Rollover(); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 100)
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("Manager.Close from OnPromote: %v", err)
			}
			if _, err := b.ReadAt(p, 0); !errors.Is(err, spool.ErrClosed) {
				t.Errorf("ReadAt after Manager.Close = %v, want ErrClosed", err)
			}
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no promotion, or Manager.Close called from OnPromote never returned")
		}
		b.ReadAt(p, 0) // ErrClosed once OnPromote closed the Manager
	}
}

// TestPromotion: a spilled buffer that becomes hot comes back into memory,
// with OnPromote and Stats telling so, and reads are then served from
// memory, with the same bytes.
func TestPromotion(t *testing.T) {
	events := make(chan spool.PromoteEvent, 10)
	m := lfuManager(t, 64, spool.Options{OnPromote: func(e spool.PromoteEvent) { events <- e }})
	b, data := filled(t, m, 5*4096+17, 7)
	if err := b.Rollover(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a promotion", func() { readN(t, b, 10) }, func() bool { return !b.OnDisk() })
	e := <-events
	if e.Buffer != b.ID() || e.Size != int64(len(data)) {
		t.Errorf("PromoteEvent %+v, want buffer %d size %d", e, b.ID(), len(data))
	}
	st := m.Stats()
	if st.Promotions != 1 || st.PromotedBytes != int64(len(data)) || st.BuffersOnDisk != 0 || st.DiskInUse != 0 {
		t.Errorf("after promotion: %+v", st)
	}
	wantContent(t, b, data)
	before := m.Stats()
	readN(t, b, 10)
	after := m.Stats()
	if got := after.ReadsFromMemory - before.ReadsFromMemory; got != 10 {
		t.Errorf("%d of 10 reads after promotion were served from memory", got)
	}
	// It can spill and come back again.
	if err := b.Rollover(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a second promotion", func() { readN(t, b, 10) }, func() bool { return !b.OnDisk() })
	wantContent(t, b, data)
}

// TestPromotionDisabled: with DisablePromotion, a hot spilled buffer stays
// on disk.
func TestPromotionDisabled(t *testing.T) {
	m := lfuManager(t, 64, spool.Options{DisablePromotion: true})
	b, _ := filled(t, m, 5*4096, 8)
	b.Rollover()
	readN(t, b, 2000)
	if !b.OnDisk() || m.Stats().Promotions != 0 {
		t.Errorf("promoted with DisablePromotion: %+v", m.Stats())
	}
}

// TestPromotionKeepsHotterData: when memory is held by buffers hotter than
// the candidate, the candidate stays on disk.
func TestPromotionKeepsHotterData(t *testing.T) {
	m := lfuManager(t, 8, spool.Options{})
	var hot []*spool.Buffer
	for i := range 4 {
		b, _ := filled(t, m, 2*4096, uint64(20+i))
		hot = append(hot, b)
	}
	for _, b := range hot { // the hot set fills the budget
		readN(t, b, 200)
	}
	cold, _ := filled(t, m, 4096, 30) // colder than all: goes to disk itself
	if !cold.OnDisk() {
		t.Fatal("the cold buffer did not go to disk")
	}
	waitFor(t, "a refused promotion", func() {
		readN(t, cold, 5)
		for _, b := range hot {
			readN(t, b, 20)
		}
	}, func() bool {
		st := m.Stats()
		return st.PromotionsNoRoom+st.PromotionsRejected > 0
	})
	for i, b := range hot {
		if b.OnDisk() {
			t.Errorf("hot buffer %d was rolled over for a colder one", i)
		}
	}
}

// TestPromotionConcurrent: readers, writers and promotions at once under
// -race, with the budget sampled throughout; every byte checked at the end.
func TestPromotionConcurrent(t *testing.T) {
	defer watchdog(t, 2*time.Minute)()
	const budget = 24 * 4096
	m := lfuManager(t, 24, spool.Options{})
	smp := startSampler(m)
	bufs := make([]*spool.Buffer, 12)
	datas := make([][]byte, len(bufs))
	var mu sync.Mutex // guards datas
	for i := range bufs {
		bufs[i], datas[i] = filled(t, m, 3*4096+i, uint64(40+i))
	}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for k := range 400 {
				i := (g*7 + k*k) % len(bufs) // skewed: some buffers far hotter
				if k%9 == 0 {
					p := randBytes(uint64(g*1000+k), 3000)
					mu.Lock()
					if _, err := bufs[i].WriteAt(p, 100); err != nil {
						t.Error(err)
					}
					copy(datas[i][100:], p)
					mu.Unlock()
					continue
				}
				if k%13 == 0 {
					bufs[i].Rollover()
					continue
				}
				p := make([]byte, 4096)
				mu.Lock()
				want := append([]byte(nil), datas[i][:4096]...)
				n, err := bufs[i].ReadAt(p, 0)
				mu.Unlock()
				if err != nil || n != 4096 || string(p) != string(want) {
					t.Errorf("ReadAt = %d, %v, equal %v", n, err, string(p) == string(want))
				}
			}
		})
	}
	wg.Wait()
	smp.finish(t, budget)
	for i, b := range bufs {
		wantContent(t, b, datas[i])
	}
	st := m.Stats()
	t.Logf("%+v", st)
	if st.Promotions == 0 {
		t.Error("no promotion happened")
	}
	spool.StopPromoter(m)
	if err := spool.CheckHolding(m); err != nil {
		t.Errorf("after promotions: %v", err)
	}
	if err := m.Close(); err != nil && !errors.Is(err, spool.ErrClosed) {
		t.Fatal(err)
	}
	if err := spool.CheckHolding(m); err != nil {
		t.Errorf("after Close: %v", err)
	}
}

// TestCloseDuringPromotionFreesBudget: the promoter rolls a cold buffer
// over to make room for a hot one, and its OnSpill is still running when
// Manager.Close is called from another goroutine. When Close returns, the
// budget must be all free, as documented (issue 10, item 3: the
// promoter's reservation was held until OnSpill returned).
func TestCloseDuringPromotionFreesBudget(t *testing.T) {
	inSpill, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	m := lfuManager(t, 8, spool.Options{OnSpill: func(e spool.SpillEvent) {
		if e.Reason == spool.SpillEvicted {
			once.Do(func() { close(inSpill); <-release })
		}
	}})
	defer close(release)
	filled(t, m, 6*4096, 1) // cold: written once, never read
	hot, _ := filled(t, m, 2*4096, 2)
	if err := hot.Rollover(); err != nil {
		t.Fatal(err)
	}
	if _, err := hot.Write(randBytes(3, 2*4096)); err != nil { // 4 chunks on disk
		t.Fatal(err)
	}
	p := make([]byte, 100)
	deadline := time.Now().Add(time.Minute)
	for waiting := true; waiting; {
		select {
		case <-inSpill:
			waiting = false
		default:
			if time.Now().After(deadline) {
				t.Fatal("no promotion rolled the cold buffer over")
			}
			hot.ReadAt(p, 0)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.MemoryInUse != 0 || st.Buffers != 0 {
		t.Errorf("after Manager.Close: MemoryInUse %d, Buffers %d; want 0, 0", st.MemoryInUse, st.Buffers)
	}
}
