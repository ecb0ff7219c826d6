package spool

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"unsafe"
)

func skipWithoutMapping(t *testing.T) {
	t.Helper()
	if !mapping {
		t.Skip("no mapped memory on this system or under the race detector (pages.go)")
	}
}

// TestSlabClassesOfEveryChunkSize: every class is either carved from
// slabs or mapped on its own, not both.
func TestSlabClassesOfEveryChunkSize(t *testing.T) {
	skipWithoutMapping(t)
	for cs := MinChunkSize; cs <= MaxChunkSize; cs *= 2 {
		for _, c := range newMemory(cs, int64(cs)).classes {
			switch {
			case !mappable(c) && !slabbed(c):
				t.Errorf("chunk size %d: class %d is neither slabbed nor mapped", cs, c)
			case slabbed(c) && mappable(c):
				t.Errorf("chunk size %d: class %d is both slabbed and mapped", cs, c)
			}
		}
	}
}

// TestSlabSlots: a slab hands out slices of its class that lie within it,
// apart, each with its capacity its length; a full slab makes pages map
// another; a slice given back is the next handed out; a slab is unmapped
// when its last slice comes back, and a slice of Go's heap is not taken
// for one of a slab.
func TestSlabSlots(t *testing.T) {
	skipWithoutMapping(t)
	const size = 3072
	p := new(pages)
	n := slotsPerSlab(size)
	var got [][]byte
	for range n + 1 {
		b, ok := p.alloc(size)
		if !ok {
			t.Fatalf("alloc(%d) failed after %d slices", size, len(got))
		}
		if len(b) != size || cap(b) != size {
			t.Fatalf("alloc(%d): len %d, cap %d", size, len(b), cap(b))
		}
		for i := range b {
			b[i] = byte(len(got))
		}
		got = append(got, b)
	}
	base := func(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) &^ (slabSize - 1) }
	first := base(got[0])
	for i, b := range got[:n] {
		if base(b) != first {
			t.Fatalf("slice %d of a slab of %d slots lies in another slab", i, n)
		}
		if b[0] != byte(i) || b[size-1] != byte(i) {
			t.Fatalf("slice %d was overwritten by another: %d ... %d", i, b[0], b[size-1])
		}
	}
	if base(got[n]) == first {
		t.Fatalf("slice %d, past a full slab, lies in it", n)
	}
	if want := int64(2 * slabSize); p.mapped() != want || p.bytes.Load() != want || p.count.Load() != 2 {
		t.Errorf("two slabs: %d bytes listed, %d counted, %d mappings; want %d, %d, 2", p.mapped(), p.bytes.Load(), p.count.Load(), want, want)
	}
	if p.free(make([]byte, size)) {
		t.Error("free took a slice of Go's heap for one of a slab")
	}
	mid := got[n/2]
	if !p.free(mid) {
		t.Fatal("free did not take back a slice of a slab")
	}
	again, _ := p.alloc(size)
	if &again[0] != &mid[0] {
		t.Error("the slot given back was not the next handed out")
	}
	for _, b := range got {
		if !p.free(b) {
			t.Fatal("free did not take back a slice of a slab")
		}
	}
	if p.mapped() != 0 || p.bytes.Load() != 0 || p.count.Load() != 0 {
		t.Errorf("every slice given back: %d bytes listed, %d counted, %d mappings; want none", p.mapped(), p.bytes.Load(), p.count.Load())
	}
	if mapped, known := mappedNow(got[0]); known && mapped {
		t.Error("an empty slab is still mapped")
	}
}

// TestSlabsBoundedAndDropped: slabs count among the mappings pages bounds
// (maxMappings); once dropped, pages maps no more slabs, and those still
// in use are unmapped when their last slice comes back.
func TestSlabsBoundedAndDropped(t *testing.T) {
	skipWithoutMapping(t)
	p := new(pages)
	p.count.Store(maxMappings)
	if _, ok := p.alloc(1024); ok {
		t.Error("a slab was mapped past maxMappings")
	}
	p.count.Store(0)
	b, ok := p.alloc(1024)
	if !ok {
		t.Fatal("alloc(1024) failed")
	}
	p.drop()
	if _, ok := p.alloc(2048); ok {
		t.Error("a slab was mapped after drop")
	}
	c, ok := p.alloc(1024) // a slot of the slab that exists
	if !ok {
		t.Fatal("alloc(1024) from a slab with free slots failed after drop")
	}
	p.free(b)
	if p.mapped() == 0 {
		t.Fatal("a slab with a slice in use was unmapped")
	}
	c[0] = 1 // still writable
	p.free(c)
	if p.mapped() != 0 || p.count.Load() != 0 {
		t.Errorf("after drop and the last slice given back: %d bytes, %d mappings", p.mapped(), p.count.Load())
	}
}

// TestSlabsConcurrent: goroutines taking and giving back slices of
// several classes at once each find their slice as they wrote it, and
// every slab is unmapped at the end.
func TestSlabsConcurrent(t *testing.T) {
	skipWithoutMapping(t)
	p := new(pages)
	sizes := []int{256, 1280, 4096, 9472, 18432}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			var held [][]byte
			for i := range 4000 {
				if len(held) > 0 && rng.IntN(2) == 0 {
					k := rng.IntN(len(held))
					b := held[k]
					for j := range b {
						if b[j] != byte(g+1) {
							t.Errorf("goroutine %d: byte %d of a %d-byte slice is %d", g, j, len(b), b[j])
							return
						}
					}
					p.free(b)
					held[k] = held[len(held)-1]
					held = held[:len(held)-1]
					continue
				}
				b, ok := p.alloc(sizes[(i+g)%len(sizes)])
				if !ok {
					t.Errorf("alloc failed")
					return
				}
				for j := range b {
					b[j] = byte(g + 1) // not 0: a page given back reads zeros
				}
				held = append(held, b)
			}
			for _, b := range held {
				p.free(b)
			}
		})
	}
	wg.Wait()
	if p.mapped() != 0 || p.count.Load() != 0 {
		t.Errorf("every slice given back: %d bytes, %d mappings left", p.mapped(), p.count.Load())
	}
}

// TestSlabReleasesLargeSlots: a slot of minReleased or more, whole pages,
// has its pages given back to the system when it comes back to its slab,
// and reads as zeros when handed out again; a smaller slot keeps its
// pages, and its bytes.
func TestSlabReleasesLargeSlots(t *testing.T) {
	skipWithoutMapping(t)
	p := new(pages)
	for _, size := range []int{minReleased, maxSlabbed, 4096} {
		keep, _ := p.alloc(size) // keeps the slab mapped
		b, ok := p.alloc(size)
		if !ok {
			t.Fatalf("alloc(%d) failed", size)
		}
		for i := range b {
			b[i] = 0xA5
		}
		p.free(b)
		resident, known := residentNow(b)
		switch {
		case !known:
			t.Skip("cannot tell which pages are in memory here")
		case releasable(size) && resident:
			t.Errorf("slot of %d bytes given back: its pages are still in memory", size)
		case !releasable(size) && !resident:
			t.Errorf("slot of %d bytes given back: its pages were released", size)
		}
		again, _ := p.alloc(size)
		if &again[0] != &b[0] {
			t.Fatalf("slot of %d bytes not handed out again", size)
		}
		if releasable(size) && again[0] != 0 {
			t.Errorf("released slot of %d bytes reads %#x", size, again[0])
		}
		p.free(again)
		p.free(keep)
	}
	if p.mapped() != 0 {
		t.Errorf("%d bytes mapped at the end", p.mapped())
	}
}

// TestSlabReleasesIdlePages: in a slab of a class whose slots share pages,
// pages that no slot in use overlaps are given back to the system once
// there are releaseIdle of them, not before; the slots still in use keep
// their bytes, and a slot on a page given back is handed out again and
// holds what is written to it.
func TestSlabReleasesIdlePages(t *testing.T) {
	skipWithoutMapping(t)
	const size = 3072 // not releasable: slots straddle pages
	if !tracksPages(size) {
		t.Skipf("%d-byte pages: slabs of %d-byte slots do not count them", pageSize, size)
	}
	p := new(pages)
	n := slotsPerSlab(size)
	slots := make([][]byte, n)
	for i := range slots {
		b, ok := p.alloc(size)
		if !ok {
			t.Fatalf("alloc(%d) failed", size)
		}
		for j := range b {
			b[j] = byte(i + 1)
		}
		slots[i] = b
	}
	page := func(k int) []byte {
		base := unsafe.Slice((*byte)(unsafe.Pointer(&slots[0][0])), slabSize)
		return base[k*pageSize : (k+1)*pageSize]
	}
	// Slots [0, k) cover pages [0, k·size/pageSize) whole: the first
	// k for which releaseIdle pages are idle.
	k := (releaseIdle*pageSize + size - 1) / size
	for i := range k - 1 {
		p.free(slots[i])
	}
	idle := (k - 1) * size / pageSize
	if idle >= releaseIdle {
		t.Fatalf("test setup: %d idle pages before the last free", idle)
	}
	resident, known := residentNow(page(0))
	if !known {
		t.Skip("cannot tell which pages are in memory here")
	}
	if !resident {
		t.Errorf("%d idle pages, fewer than %d: page 0 was given back", idle, releaseIdle)
	}
	p.free(slots[k-1])
	for pg := range releaseIdle {
		if resident, _ := residentNow(page(pg)); resident {
			t.Errorf("%d idle pages: page %d is still in memory", releaseIdle, pg)
		}
	}
	// The page shared with slot k, still in use, stays.
	if resident, _ := residentNow(page(k * size / pageSize)); !resident {
		t.Errorf("page %d, shared with a slot in use, was given back", k*size/pageSize)
	}
	for i, b := range slots[k:] {
		for j := range b {
			if b[j] != byte(k+i+1) {
				t.Fatalf("slot %d in use: byte %d is %d, want %d", k+i, j, b[j], k+i+1)
			}
		}
	}
	again, _ := p.alloc(size)
	if &again[0] != &slots[k-1][0] {
		t.Fatal("the last slot given back is not handed out first")
	}
	for j := range again {
		again[j] = 0x5A
	}
	for j := range again {
		if again[j] != 0x5A {
			t.Fatalf("slot handed out again on a page given back: byte %d is %#x", j, again[j])
		}
	}
	p.free(again)
	for _, b := range slots[k:] {
		p.free(b)
	}
	if p.mapped() != 0 {
		t.Errorf("%d bytes mapped at the end", p.mapped())
	}
}

// TestSlabFreeOfHeapSlice: giving back a slice of a slabbed size that came
// from Go's heap (past maxMappings, or after Close) while a collection
// runs: the slab it would belong to is looked up by address, never by a
// pointer that may point into freed heap memory, which the collector
// would find while scanning the goroutine's stack ("found bad pointer in
// Go heap"). The lookup is held at the shard's lock while collections run.
func TestSlabFreeOfHeapSlice(t *testing.T) {
	skipWithoutMapping(t)
	p := new(pages)
	const size = 4 << 10
	// Small slices between large ones that are then freed: many a
	// small one's rounded-down address falls in freed heap memory.
	kept := make([][]byte, 2000)
	big := make([][]byte, len(kept))
	for i := range kept {
		big[i] = make([]byte, 200<<10)
		kept[i] = make([]byte, size)
	}
	clear(big)
	runtime.GC()
	runtime.GC()
	for _, b := range kept[:400] {
		addr := addressOf(b)
		sh := p.shard(addr - addr&(slabSize-1))
		sh.mu.Lock()
		done := make(chan bool)
		go func() { done <- p.free(b) }()
		runtime.Gosched()
		runtime.GC() // the goroutine may be parked in slabOf, at the lock
		sh.mu.Unlock()
		if <-done {
			t.Fatal("free took a slice of Go's heap for one of a slab")
		}
	}
}

// BenchmarkSlabChurn takes and gives back slices of the small classes in
// random order, 4,096 held at a time, as many small buffers coming and
// going do: each op gives one back and takes one (of a random class), so
// slabs keep emptying pages (the idle pages they give back) and filling
// them again.
func BenchmarkSlabChurn(b *testing.B) {
	if !mapping {
		b.Skip("no mapped memory on this system or under the race detector (pages.go)")
	}
	sizes := []int{256, 1024, 3072, 4096, 6144, 9472}
	p := new(pages)
	defer p.freeAll()
	rng := rand.New(rand.NewPCG(1, 2))
	held := make([][]byte, 4096)
	take := func() []byte {
		s, ok := p.alloc(sizes[rng.IntN(len(sizes))])
		if !ok {
			b.Fatal("alloc failed")
		}
		s[0], s[len(s)-1] = 1, 1 // touch its pages, as a write would
		return s
	}
	for i := range held {
		held[i] = take()
	}
	b.ResetTimer()
	for b.Loop() {
		k := rng.IntN(len(held))
		p.free(held[k])
		held[k] = take()
	}
}
