package spool

import (
	"errors"
	"io"
	"runtime"
	"testing"
)

// TestPagesMapAndUnmap: pages maps the classes of whole pages above
// maxSlabbed, zeroed and writable, unmaps each once, and leaves any
// other slice alone (the small classes come from slabs: slab_test.go).
func TestPagesMapAndUnmap(t *testing.T) {
	if !mapping {
		t.Skip("no mapped memory on this system or under the race detector (pages.go)")
	}
	p := new(pages)
	for _, size := range []int{maxSlabbed + 1, 1000, minClass - slabAlign, maxSlabbed + slabAlign} {
		if _, ok := p.alloc(size); ok {
			t.Errorf("alloc(%d) mapped a slice that is neither whole pages above %d bytes nor of a slab", size, maxSlabbed)
		}
	}
	b, ok := p.alloc(64 << 10)
	if !ok || len(b) != 64<<10 || cap(b) != 64<<10 {
		t.Fatalf("alloc(64 KiB) = %d bytes (cap %d), %v", len(b), cap(b), ok)
	}
	for i, c := range b {
		if c != 0 {
			t.Fatalf("byte %d of a new mapping is %#x", i, c)
		}
	}
	for i := range b {
		b[i] = byte(i)
	}
	if got := p.mapped(); got != 64<<10 {
		t.Errorf("mapped %d bytes, want 64 KiB", got)
	}
	if mapped, known := mappedNow(b); known && !mapped {
		t.Error("a mapping of alloc is not mapped")
	}
	if !p.free(b) {
		t.Error("free did not unmap a mapping")
	}
	if mapped, known := mappedNow(b); known && mapped {
		t.Error("free left the mapping mapped")
	}
	if p.free(b) {
		t.Error("free unmapped a mapping twice")
	}
	if p.free(make([]byte, 64<<10)) {
		t.Error("free took a slice of Go's heap for a mapping")
	}
	if got := p.mapped(); got != 0 {
		t.Errorf("mapped %d bytes after free, want 0", got)
	}
}

// TestMemoryUnmapsWhatItLetsGo: the allocator keeps mapped slices in its
// free lists, and unmaps those it lets go: chunks trimmed, small-class
// slices past the slack, given back or dropped for another class, and
// everything its free lists hold when the Manager closes. A slice in use
// when it closes stays mapped, and writable, until it is given back.
func TestMemoryUnmapsWhatItLetsGo(t *testing.T) {
	if !mapping {
		t.Skip("no mapped memory on this system or under the race detector (pages.go)")
	}
	const cs, slack = 256 << 10, 256 << 10
	a := newMemory(cs, slack)
	want := func(what string, n int64) {
		t.Helper()
		if got := a.os.mapped(); got != n {
			t.Errorf("%s: %d KiB mapped, want %d KiB", what, got>>10, n>>10)
		}
	}
	gone := func(what string, b []byte) {
		t.Helper()
		if mapped, known := mappedNow(b); known && mapped {
			t.Errorf("%s: still mapped", what)
		}
	}
	c1, c2 := a.get(cs), a.get(cs)
	want("two chunks taken", 2*cs)
	second := *c2
	a.put(c1)
	a.put(c2)
	want("two chunks given back to the free list", 2*cs)
	a.trim(cs)
	want("free chunks trimmed to one", cs)
	gone("the chunk trimmed", second) // the free list is a stack: the last one given back goes first

	const small, larger = 64 << 10, 120 << 10 // classes of their own mappings below a chunk
	var smalls []*[]byte
	for range 5 {
		smalls = append(smalls, a.get(small))
	}
	want("five 64 KiB slices taken", cs+5*small)
	for _, c := range smalls {
		a.put(c)
	}
	want("five 64 KiB slices given back, four within the slack", cs+4*small)
	a.put(a.get(larger))
	want("a 120 KiB slice given back in place of two 64 KiB ones", cs+2*small+larger)

	inUse := a.get(cs)
	want("a chunk taken from the free list", 2*small+larger+cs)
	a.drop()
	want("the Manager closed with a chunk in use", cs)
	for i := range *inUse {
		(*inUse)[i] = 1 // still mapped: a Read in progress may write here
	}
	a.put(inUse)
	want("the chunk given back after the close", 0)
	if h, c := a.held.Load(), a.chunks.Load(); h != 0 || c != 0 {
		t.Errorf("after Close: free lists count %d bytes of small classes and %d of chunks, want 0", h, c)
	}
	for i := range a.lists {
		if n := len(a.lists[i].items); n != 0 || a.lists[i].bytes.Load() != 0 {
			t.Errorf("after Close: class %d holds %d slices, %d bytes", a.classes[i], n, a.lists[i].bytes.Load())
		}
	}
}

// TestPagesBounded: pages maps no more than maxMappings slices at once;
// past that, alloc declines and memory takes the slice from Go's heap.
func TestPagesBounded(t *testing.T) {
	if !mapping {
		t.Skip("no mapped memory on this system or under the race detector (pages.go)")
	}
	a := newMemory(64<<10, 64<<10)
	a.os.count.Store(maxMappings - 1) // as if that many were mapped
	last := a.get(64 << 10)
	if got := a.os.mapped(); got != 64<<10 {
		t.Fatalf("the last mapping allowed was not made: %d bytes mapped", got)
	}
	c := a.get(64 << 10)
	if len(*c) != 64<<10 {
		t.Fatalf("get past the bound: %d bytes", len(*c))
	}
	if a.os.free(*c) {
		t.Error("a slice got past the bound was mapped")
	}
	a.os.count.Add(-(maxMappings - 1))
	a.put(c)
	a.put(last)
	a.drop()
	if got, n := a.os.mapped(), a.os.count.Load(); got != 0 || n != 0 {
		t.Errorf("after drop: %d bytes mapped, %d mappings counted", got, n)
	}
}

// TestMemoryUnmappedWhenUnreachable: an allocator dropped without Close
// (a Manager that was never closed) unmaps its slices once the garbage
// collector finds it unreachable, those in use included.
func TestMemoryUnmappedWhenUnreachable(t *testing.T) {
	if !mapping {
		t.Skip("no mapped memory on this system or under the race detector (pages.go)")
	}
	p := func() *pages {
		a := newMemory(64<<10, 64<<10)
		a.put(a.get(64 << 10))
		_ = a.get(32 << 10) // in use, never given back
		return a.os
	}()
	for i := 0; p.mapped() != 0; i++ {
		if i == 1000 {
			t.Fatalf("%d bytes still mapped after %d collections", p.mapped(), i)
		}
		runtime.GC() // the cleanup runs after the allocator is found unreachable
		runtime.Gosched()
	}
}

// TestUnclosedManagerUnmapped: a Manager dropped without Close, with a
// Buffer holding mapped chunks also dropped, has its mappings unmapped
// once the garbage collector finds them unreachable (the Buffer's own
// cleanup gives its chunks back first).
func TestUnclosedManagerUnmapped(t *testing.T) {
	if !mapping {
		t.Skip("no mapped memory on this system or under the race detector (pages.go)")
	}
	dir := t.TempDir()
	p := func() *pages {
		m := holdingChunks(t, dir, 3)
		if got := m.mem.os.mapped(); got < 3*DefaultChunkSize {
			t.Fatalf("%d bytes mapped for 3 chunks", got)
		}
		return m.mem.os
	}()
	for i := 0; p.mapped() != 0; i++ {
		if i == 1000 {
			t.Fatalf("%d bytes still mapped after %d collections", p.mapped(), i)
		}
		runtime.GC()
		runtime.Gosched()
	}
}

// TestCloseDuringReadFromKeepsStage: Manager.Close while a ReadFrom's Read
// is writing into its stage, a whole mapped chunk, does not unmap the
// stage under it: the Read finishes writing, ReadFrom returns ErrClosed,
// and the stage is unmapped when it comes back.
func TestCloseDuringReadFromKeepsStage(t *testing.T) {
	if !mapping {
		t.Skip("no mapped memory on this system or under the race detector (pages.go)")
	}
	m, err := NewManager(Options{MemoryBudget: 1 << 20, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.NewBuffer()
	if err != nil {
		t.Fatal(err)
	}
	r := &blockingReader{inRead: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := b.ReadFrom(r)
		done <- err
	}()
	<-r.inRead // the stage has grown to a chunk, and Read holds it
	if got := m.mem.os.mapped(); got < DefaultChunkSize {
		t.Fatalf("%d bytes mapped with a chunk-sized stage in use, want at least %d", got, DefaultChunkSize)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	close(r.release)
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("ReadFrom across Manager.Close: %v, want ErrClosed", err)
	}
	if got := m.mem.os.mapped(); got != 0 {
		t.Errorf("%d bytes still mapped after Close and the end of ReadFrom", got)
	}
}

// blockingReader fills every slice it is given until one is a whole
// chunk; that Read reports it (inRead), waits for release, then fills it
// too.
type blockingReader struct {
	inRead, release chan struct{}
	blocked         bool
}

func (r *blockingReader) Read(p []byte) (int, error) {
	if r.blocked {
		return 0, io.EOF
	}
	if len(p) == DefaultChunkSize {
		r.blocked = true
		close(r.inRead)
		<-r.release
	}
	for i := range p {
		p[i] = 0xA5
	}
	return len(p), nil
}

// TestStatsMemoryMapped: Stats.MemoryMapped counts the chunks a buffer
// holds mapped, and falls to 0 once the Manager is closed; with nothing
// mapped (no mmap, or under the race detector) it stays 0.
func TestStatsMemoryMapped(t *testing.T) {
	m := holdingChunks(t, t.TempDir(), 3)
	got := m.Stats().MemoryMapped
	switch {
	case mapping && got < 3*DefaultChunkSize:
		t.Errorf("MemoryMapped %d with 3 chunks held, want at least %d", got, 3*DefaultChunkSize)
	case !mapping && got != 0:
		t.Errorf("MemoryMapped %d with nothing mapped", got)
	case got != m.mem.os.mapped():
		t.Errorf("MemoryMapped %d, the mappings listed hold %d", got, m.mem.os.mapped())
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if got := m.Stats().MemoryMapped; got != 0 {
		t.Errorf("MemoryMapped %d after Close", got)
	}
}

// holdingChunks returns a Manager with a 1 MiB budget spilling into dir,
// with one Buffer (not closed) holding n whole chunks in memory.
func holdingChunks(t *testing.T, dir string, n int) *Manager {
	t.Helper()
	m, b := managerAndBuffer(t, dir)
	if _, err := b.Write(make([]byte, n*DefaultChunkSize)); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPageShardsSpread: mappings of whole chunks, which the system tends
// to place next to each other, spread over the shards (no shard lists
// more than three times its share of 256), at every chunk size.
func TestPageShardsSpread(t *testing.T) {
	if !mapping {
		t.Skip("no mapped memory on this system or under the race detector (pages.go)")
	}
	for _, size := range []int{64 << 10, MaxChunkSize} {
		p := new(pages)
		var bs [][]byte
		for range 256 {
			b, ok := p.alloc(size)
			if !ok {
				t.Fatalf("alloc(%d) failed", size)
			}
			bs = append(bs, b)
		}
		for i := range p.shards {
			if n := len(p.shards[i].live); n > 3*256/pageShards {
				t.Errorf("chunks of %d bytes: shard %d lists %d of 256 mappings", size, i, n)
			}
		}
		for _, b := range bs {
			p.free(b)
		}
	}
}

// mapped returns the bytes p lists as mapped, counted from its shards: an
// oracle for p.bytes (Stats.MemoryMapped), kept out of the package.
func (p *pages) mapped() int64 {
	var n int64
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		for _, m := range sh.live {
			n += int64(len(m.mem))
		}
		sh.mu.Unlock()
	}
	return n
}
