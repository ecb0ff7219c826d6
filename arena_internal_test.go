package spool

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// testArena returns an arena with one segment in t.TempDir(), and it.
func testArena(t *testing.T, fs fileSystem) (*arena, *segment) {
	t.Helper()
	disk := new(diskBudget)
	a := newArena(t.TempDir(), DefaultPattern, fs, disk, 4096, 1)
	s, err := a.pick()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.close() })
	return a, s
}

// TestArenaAllocation: extents are allocated lowest first, within frames
// of their class; a freed extent is reused first; a frame whose extents
// are all free is reused for another class; the disk budget follows.
func TestArenaAllocation(t *testing.T) {
	a, s := testArena(t, osFS{})
	full := a.classOf(4096)
	var exts []extent
	for range 4 {
		e, err := a.alloc(s, full, nil)
		if err != nil {
			t.Fatal(err)
		}
		exts = append(exts, e)
	}
	// Three chunks to a frame: the fourth is in the second frame.
	for i, e := range exts {
		if want := int64(i) * 4096; e.offset() != want || e.seg() != 0 || e.class() != full {
			t.Fatalf("extent %d at %d (segment %d, class %d), want %d", i, e.offset(), e.seg(), e.class(), want)
		}
	}
	if got := a.disk.used(); got != 4*4096 {
		t.Errorf("disk in use %d, want %d", got, 4*4096)
	}
	a.free(exts[1])
	a.settle(s)
	if e, _ := a.alloc(s, full, nil); e.offset() != 4096 {
		t.Errorf("after freeing the extent at 4096, the next is at %d", e.offset())
	}
	for _, e := range exts {
		a.free(e)
	}
	a.settle(s)
	if got := a.disk.used(); got != 0 {
		t.Errorf("disk in use %d after freeing all", got)
	}
	// Every frame is free: a small class starts at the lowest one.
	small := a.classOf(1000)
	if e, _ := a.alloc(s, small, nil); e.offset() != 0 || a.classes[small] != 1024 {
		t.Errorf("a %d-byte extent at %d after all were freed, want 0", a.classes[small], e.offset())
	}
}

// TestArenaTaintedExtentNotReused: an extent a zero-copy send read is not
// reused when freed while its frame holds live extents (the kernel may
// still hold its pages); once its frame is free and punched out, it is.
func TestArenaTaintedExtentNotReused(t *testing.T) {
	a, s := testArena(t, osFS{})
	full := a.classOf(4096)
	e0, _ := a.alloc(s, full, nil)
	e1, _ := a.alloc(s, full, nil)
	s.pin(e1.offset())
	a.unpin(s, e1)
	a.free(e1)
	if got := a.disk.used(); got != 2*4096 {
		t.Errorf("disk in use %d with a dead extent, want it counted: %d", got, 2*4096)
	}
	e2, _ := a.alloc(s, full, nil)
	if e2.offset() == e1.offset() {
		t.Fatalf("the tainted extent at %d was reused while its frame was in use", e1.offset())
	}
	a.free(e0)
	a.free(e2)
	a.settle(s)
	if got := a.disk.used(); got != 0 {
		t.Errorf("disk in use %d once the frame was recycled", got)
	}
	if e3, _ := a.alloc(s, full, nil); e3.offset() != 0 {
		t.Errorf("the recycled frame's first extent is at %d", e3.offset())
	}
	if a.noZeroCopy.Load() {
		t.Error("zero-copy sends turned off although punching works")
	}
}

// TestArenaTaintedFrameLost: when a frame with dead extents cannot be
// punched out, it is never reused, and zero-copy sends stop.
func TestArenaTaintedFrameLost(t *testing.T) {
	f := &Faults{FailAt: -1, Err: errors.New("injected")}
	a, s := testArena(t, faultyFS{f})
	full := a.classOf(4096)
	e0, _ := a.alloc(s, full, nil)
	e1, _ := a.alloc(s, full, nil)
	_, _ = a.alloc(s, full, nil)
	e3, _ := a.alloc(s, full, nil) // the second frame: the first is not the last
	s.pin(e1.offset())
	a.unpin(s, e1)
	a.free(e1)
	a.free(e0)
	a.free(makeExtent(0, full, 8192))
	f.FailAt = f.Ops() // the punch
	a.settle(s)
	if !a.noZeroCopy.Load() {
		t.Error("zero-copy sends go on although a tainted frame could not be punched")
	}
	for range 3 {
		if e, _ := a.alloc(s, full, nil); e.offset() < 12288 {
			t.Fatalf("an extent at %d, in the lost frame", e.offset())
		}
	}
	a.free(e3)
}

// testArenaCS returns an arena with chunks of cs bytes, a disk budget of
// limit bytes (0: none) and one segment in t.TempDir(), and the segment.
func testArenaCS(t *testing.T, fs fileSystem, cs, limit int64) (*arena, *segment) {
	t.Helper()
	disk := new(diskBudget)
	disk.limit.Store(limit)
	a := newArena(t.TempDir(), DefaultPattern, fs, disk, cs, 1)
	s, err := a.pick()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.close() })
	return a, s
}

// checkArena recounts the disk accounting of every segment of a from its
// bitmaps, independently of the code under test, and fails t if the
// counters that alloc, release, settle and reclaim keep differ: the bytes
// charged (each segment's, and the disk budget's, which only a uses), the
// slack (each segment's and the arena's). It also checks that every
// granule a taken slot overlaps is charged, that slot counts match the
// slot bitmaps, and that no bit is set past the end of a bitmap.
func checkArena(t *testing.T, a *arena) {
	t.Helper()
	var charged, slack int64
	for i := range a.segs {
		s := a.segs[i].Load()
		if s == nil {
			continue
		}
		s.mu.Lock()
		sc, ss, err := recount(s)
		s.mu.Unlock() // before any Fatal, which would leave it locked
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		if sc != s.charged || ss != s.slack {
			t.Fatalf("segment %d: charged %d, slack %d; recounted %d, %d", i, s.charged, s.slack, sc, ss)
		}
		charged += sc
		slack += ss
	}
	if slack != a.slack.Load() || charged != a.disk.used() {
		t.Fatalf("arena: slack %d, disk in use %d; recounted %d, %d", a.slack.Load(), a.disk.used(), slack, charged)
	}
}

// recount returns the bytes charged and the slack of segment s, counted
// from its bitmaps. s.mu is held.
func recount(s *segment) (charged, slack int64, err error) {
	a := s.a
	g := a.gran
	for j := range s.frames {
		f := &s.frames[j]
		for k := a.grans; k < 192; k++ {
			if f.disk.get(k) {
				return 0, 0, fmt.Errorf("frame %d: granule %d of %d charged", j, k, a.grans)
			}
		}
		charged += int64(f.disk.count()) * g
		if f.punching.andNot(f.disk) != (bitmap{}) {
			return 0, 0, fmt.Errorf("frame %d: granules being punched out but not charged: %v of %v", j, f.punching, f.disk)
		}
		switch {
		case f.class >= 0:
			size := a.classes[f.class]
			n := int(a.frame / size)
			taken := 0
			var occ bitmap
			for slot := range 192 {
				if !f.bits.get(slot) {
					continue
				}
				if slot >= n {
					return 0, 0, fmt.Errorf("frame %d: slot %d of %d taken", j, slot, n)
				}
				taken++
				lo, hi := int64(slot)*size, int64(slot+1)*size
				for k := range a.grans {
					if lo < int64(k+1)*g && hi > int64(k)*g {
						occ.set(k)
					}
				}
			}
			if taken != int(f.used) || f.dead > f.used || f.used == f.dead {
				return 0, 0, fmt.Errorf("frame %d of class %d: %d slots taken, used %d, dead %d", j, f.class, taken, f.used, f.dead)
			}
			for k := range a.grans {
				if occ.get(k) && !f.disk.get(k) {
					return 0, 0, fmt.Errorf("frame %d: granule %d occupied but not charged", j, k)
				}
				if occ.get(k) && f.punching.get(k) {
					return 0, 0, fmt.Errorf("frame %d: granule %d occupied and being punched out", j, k)
				}
				if f.disk.get(k) && !occ.get(k) && !f.punching.get(k) {
					slack += g
				}
			}
		case f.class == frameFree:
			if f.used != 0 || f.dead != 0 || f.bits != (bitmap{}) {
				return 0, 0, fmt.Errorf("free frame %d has slots: %+v", j, *f)
			}
			slack += int64(f.disk.andNot(f.punching).count()) * g
		}
	}
	return charged, slack, nil
}

// wantDisk checks the bytes a charges to the disk budget and its slack,
// and the accounting (checkArena).
func wantDisk(t *testing.T, a *arena, charged, slack int64) {
	t.Helper()
	checkArena(t, a)
	if got, gotSlack := a.disk.used(), a.slack.Load(); got != charged || gotSlack != slack {
		t.Fatalf("disk in use %d, slack %d; want %d, %d", got, gotSlack, charged, slack)
	}
}

// wantAllocated checks the bytes the file system holds for segment s, on
// Linux.
func wantAllocated(t *testing.T, s *segment, want int64) {
	t.Helper()
	f, ok := s.f.(osFile)
	if !ok {
		f = s.f.(faultyFile).spillFile.(osFile)
	}
	got, err := allocatedBytes(f.File)
	if err != nil {
		return // not on Linux
	}
	if got != want {
		t.Fatalf("the file system holds %d bytes of the segment, want %d", got, want)
	}
}

// fill writes the whole of extent e.
func fill(t *testing.T, a *arena, e extent) {
	t.Helper()
	if err := a.writeAt(e, 0, bytes.Repeat([]byte{0xAB}, int(a.size(e)))); err != nil {
		t.Fatal(err)
	}
}

// needPunch skips t unless the file system of segment s can punch holes.
func needPunch(t *testing.T, s *segment) {
	t.Helper()
	if _, err := s.f.WriteAt(make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}
	err := s.punch(0, 4096)
	if terr := s.f.Truncate(0); terr != nil {
		t.Fatal(terr)
	}
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip("the file system cannot punch holes")
	}
	if err != nil {
		t.Fatal(err)
	}
}

func mustAlloc(t *testing.T, a *arena, s *segment, c int) extent {
	t.Helper()
	e, err := a.alloc(s, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestArenaGranules: with 64 KiB chunks, disk is charged by 4 KiB
// granules: the first 1 KiB extent of a granule charges it, the next three
// nothing; a granule whose extents are all freed is slack, still charged
// and on disk, and reused first; a reclaim punches it out of the file and
// gives its charge back.
func TestArenaGranules(t *testing.T) {
	a, s := testArenaCS(t, osFS{}, 64<<10, 0)
	needPunch(t, s)
	if a.gran != 4096 || a.grans != 48 {
		t.Fatalf("granule %d, %d a frame; want 4096, 48", a.gran, a.grans)
	}
	c := a.classOf(1 << 10)
	var e [5]extent
	for i := range e {
		e[i] = mustAlloc(t, a, s, c)
		fill(t, a, e[i])
		if want := int64(i) << 10; e[i].offset() != want {
			t.Fatalf("extent %d at %d, want %d", i, e[i].offset(), want)
		}
	}
	wantDisk(t, a, 8192, 0)
	wantAllocated(t, s, 8192)
	a.free(e[1])
	a.settle(s)
	wantDisk(t, a, 8192, 0) // granule 0 still holds extents 0, 2 and 3
	for _, i := range []int{0, 2, 3} {
		a.free(e[i])
	}
	a.settle(s)
	wantDisk(t, a, 8192, 4096) // granule 0 is slack: on disk, charged
	wantAllocated(t, s, 8192)
	if r := mustAlloc(t, a, s, c); r.offset() != 0 {
		t.Fatalf("reused extent at %d, want 0", r.offset())
	} else {
		wantDisk(t, a, 8192, 0) // reusing slack charges nothing
		a.free(r)
		a.settle(s)
	}
	wantDisk(t, a, 8192, 4096)
	a.reclaim()
	wantDisk(t, a, 4096, 0)
	wantAllocated(t, s, 4096) // punched out: only extent 4's granule is left
	r := mustAlloc(t, a, s, c)
	fill(t, a, r)
	wantDisk(t, a, 8192, 0) // the punched granule is charged again
	a.free(r)
	a.free(e[4])
	a.settle(s) // the frame is empty, at the end of the file: cut off
	wantDisk(t, a, 0, 0)
	wantAllocated(t, s, 0)
}

// TestArenaGranuleStraddle: an extent that straddles two granules
// occupies both: neither is slack while it lives.
func TestArenaGranuleStraddle(t *testing.T) {
	a, s := testArenaCS(t, osFS{}, 64<<10, 0)
	needPunch(t, s)
	c := a.classOf(1536) // 1.5 KiB: slot 2 is [3 KiB, 4.5 KiB)
	var e [4]extent
	for i := range e {
		e[i] = mustAlloc(t, a, s, c)
	}
	wantDisk(t, a, 8192, 0)
	a.free(e[0])
	a.free(e[1])
	a.settle(s)
	wantDisk(t, a, 8192, 0) // extent 2 occupies granules 0 and 1
	a.free(e[2])
	a.settle(s)
	wantDisk(t, a, 8192, 4096) // granule 0 is free; extent 3 holds granule 1
	a.reclaim()
	wantDisk(t, a, 4096, 0)
	if r := mustAlloc(t, a, s, c); r.offset() != 0 {
		t.Fatalf("extent at %d, want 0", r.offset())
	}
	wantDisk(t, a, 8192, 0)
}

// TestArenaFrameRecycleReleasesGranules: a frame whose extents are all
// freed is punched out whole (in the middle of the file) or cut off (at
// the end), and the disk budget gets all its granules back, slack
// included.
func TestArenaFrameRecycleReleasesGranules(t *testing.T) {
	a, s := testArenaCS(t, osFS{}, 64<<10, 0)
	needPunch(t, s)
	full := a.classOf(64 << 10)
	var e [6]extent
	for i := range e {
		e[i] = mustAlloc(t, a, s, full)
		fill(t, a, e[i])
	}
	wantDisk(t, a, 6<<16, 0)
	a.free(e[0])
	a.settle(s)
	wantDisk(t, a, 6<<16, 1<<16)
	a.free(e[1])
	a.free(e[2])
	a.settle(s) // frame 0, in the middle: punched out, slack and all
	wantDisk(t, a, 3<<16, 0)
	wantAllocated(t, s, 3<<16)
	for _, x := range e[3:] {
		a.free(x)
	}
	a.settle(s)
	wantDisk(t, a, 0, 0)
	wantAllocated(t, s, 0)
}

// TestArenaFailedFramePunchKeepsSlack: a free frame that could not be
// punched out keeps its granules charged, as slack; an extent of another
// class reuses it, and a reclaim punches the rest out.
func TestArenaFailedFramePunchKeepsSlack(t *testing.T) {
	f := &Faults{FailAt: -1, Err: errors.New("injected")}
	a, s := testArenaCS(t, faultyFS{f}, 64<<10, 0)
	needPunch(t, s)
	full := a.classOf(64 << 10)
	var e [4]extent
	for i := range e {
		e[i] = mustAlloc(t, a, s, full)
	}
	for _, x := range e[:3] {
		a.free(x)
	}
	f.FailAt = f.Ops() // the punch of frame 0
	a.settle(s)
	wantDisk(t, a, 4<<16, 3<<16)
	small := mustAlloc(t, a, s, a.classOf(1<<10))
	if small.offset() != 0 {
		t.Fatalf("the small extent is at %d, want 0: in the free frame", small.offset())
	}
	wantDisk(t, a, 4<<16, 3<<16-4096)
	a.reclaim()
	wantDisk(t, a, 1<<16+4096, 0)
	if a.noPunch.Load() {
		t.Error("an injected error turned punching off")
	}
}

// TestArenaDeadSlotNeverPunched: the granule of an extent a zero-copy send
// tainted stays occupied and charged after it is freed (its slot is dead)
// until its whole frame is recycled: no reclaim punches it.
func TestArenaDeadSlotNeverPunched(t *testing.T) {
	a, s := testArenaCS(t, osFS{}, 64<<10, 0)
	needPunch(t, s)
	c := a.classOf(1 << 10)
	var e [5]extent
	for i := range e {
		e[i] = mustAlloc(t, a, s, c)
		fill(t, a, e[i])
	}
	s.pin(e[1].offset())
	a.free(e[1]) // freed while pinned: released when the send ends
	a.free(e[0])
	a.reclaim()
	wantDisk(t, a, 8192, 0)
	a.unpin(s, e[1]) // now dead
	a.free(e[2])
	a.free(e[3])
	a.settle(s)
	a.reclaim()
	wantDisk(t, a, 8192, 0) // granule 0 holds a dead slot: not slack
	wantAllocated(t, s, 8192)
	if r := mustAlloc(t, a, s, c); r.offset() != 0 {
		t.Fatalf("extent at %d, want 0 (a free slot beside the dead one)", r.offset())
	} else {
		a.free(r)
	}
	a.free(e[4])
	a.settle(s) // only the dead slot is left: the frame is cut off
	wantDisk(t, a, 0, 0)
	if a.noZeroCopy.Load() {
		t.Error("zero-copy sends turned off")
	}
}

// noPunchFS makes spill files that cannot punch holes, as outside Linux.
type noPunchFS struct{}

type noPunchFile struct{ spillFile }

func (noPunchFS) createTemp(dir, pattern string) (spillFile, error) {
	f, err := osFS{}.createTemp(dir, pattern)
	return noPunchFile{f}, err
}

// TestArenaNoPunch: where holes cannot be punched, slack stays charged
// (the file still holds it) and is reused; reclaims stop trying once the
// file system has said so, and an allocation refused by the disk budget
// is refused, not retried forever.
func TestArenaNoPunch(t *testing.T) {
	a, s := testArenaCS(t, noPunchFS{}, 64<<10, 3<<16)
	full := a.classOf(64 << 10)
	var e [3]extent
	for i := range e {
		e[i] = mustAlloc(t, a, s, full)
	}
	a.free(e[0])
	a.settle(s)
	wantDisk(t, a, 3<<16, 1<<16)
	if _, err := a.alloc(s, a.classOf(1<<10), nil); !errors.Is(err, ErrDiskBudget) {
		t.Fatalf("alloc past the budget = %v, want ErrDiskBudget", err)
	}
	if !a.noPunch.Load() {
		t.Fatal("punching not marked unsupported")
	}
	wantDisk(t, a, 3<<16, 1<<16)
	if r := mustAlloc(t, a, s, full); r.offset() != 0 {
		t.Fatalf("extent at %d, want 0: the slack", r.offset())
	}
	wantDisk(t, a, 3<<16, 0)
}

// TestArenaBudgetReclaims: an allocation the disk budget refuses while the
// arena holds slack reclaims the slack and succeeds.
func TestArenaBudgetReclaims(t *testing.T) {
	a, s := testArenaCS(t, osFS{}, 64<<10, 2<<16)
	needPunch(t, s)
	full := a.classOf(64 << 10)
	x0 := mustAlloc(t, a, s, full)
	mustAlloc(t, a, s, full)
	a.free(x0)
	a.settle(s) // 64 KiB of slack: far below what settle reclaims at
	wantDisk(t, a, 2<<16, 1<<16)
	small := mustAlloc(t, a, s, a.classOf(1<<10)) // a new frame: 4 KiB more
	wantDisk(t, a, 1<<16+4096, 0)
	if small.offset() != a.frame {
		t.Fatalf("extent at %d, want %d", small.offset(), a.frame)
	}
}

// TestArenaGranulesRandom runs random allocations, frees (some tainted by
// a send, some freed while pinned), settles, reclaims and failing punches
// and truncates, for several chunk sizes, under a disk budget, and
// recounts the accounting after every step (checkArena). It checks that
// no extent overlaps another, that no punch touches an extent that is
// live or pinned, that DiskInUse never passes the budget, and that once
// everything is freed and the arena closed nothing is charged.
func TestArenaGranulesRandom(t *testing.T) {
	for _, cs := range []int64{4 << 10, 64 << 10, 1 << 20} {
		t.Run(fmt.Sprint(cs>>10, "KiB"), func(t *testing.T) {
			type ext struct {
				e      extent
				pinned bool
			}
			var live []*ext
			f := &Faults{FailAt: -1, Err: errors.New("injected")}
			limit := 40 * cs
			a, s := testArenaCS(t, punchCheckFS{f: f}, cs, limit)
			s.f.(*punchCheckFile).check = func(off, n int64) {
				for _, x := range live {
					lo, hi := x.e.offset(), x.e.offset()+a.size(x.e)
					if lo < off+n && off < hi {
						t.Fatalf("punch of [%d, %d) over the extent [%d, %d) (pinned %v)", off, off+n, lo, hi, x.pinned)
					}
				}
			}
			r := rand.New(rand.NewPCG(uint64(cs), 1))
			var freedPinned []*ext
			var refused int
			var reclaimed int64
			for step := range 4000 {
				// Phases of 500 steps: the extents grow to the budget,
				// then shrink.
				grow := 30
				if step/500%2 == 0 {
					grow = 65
				}
				switch k := r.IntN(100); {
				case k < grow:
					c := r.IntN(len(a.classes))
					e, err := a.alloc(s, c, nil)
					if err != nil {
						if !errors.Is(err, ErrDiskBudget) {
							t.Fatalf("step %d: alloc: %v", step, err)
						}
						refused++
						break
					}
					lo, hi := e.offset(), e.offset()+a.size(e)
					for _, x := range append(live, freedPinned...) {
						if xl := x.e.offset(); xl < hi && lo < xl+a.size(x.e) {
							t.Fatalf("step %d: extent [%d, %d) overlaps [%d, %d)", step, lo, hi, xl, xl+a.size(x.e))
						}
					}
					live = append(live, &ext{e: e})
				case k < 80 && len(live) > 0:
					// Free one, or a few at once and settle, as a spill does.
					for range 1 + r.IntN(3) {
						if len(live) == 0 {
							break
						}
						i := r.IntN(len(live))
						x := live[i]
						live = append(live[:i], live[i+1:]...)
						if x.pinned {
							freedPinned = append(freedPinned, x)
						}
						a.free(x.e)
					}
					a.settle(s)
				case k < 87 && len(live) > 0:
					// A send reads an extent: pinned (and tainted) until it
					// ends.
					x := live[r.IntN(len(live))]
					if !x.pinned {
						s.pin(x.e.offset())
						x.pinned = true
					}
				case k < 92:
					// A send ends: of a live extent, or of one freed
					// meanwhile, which is released then.
					var pinned []*ext
					for _, x := range live {
						if x.pinned {
							pinned = append(pinned, x)
						}
					}
					pinned = append(pinned, freedPinned...)
					if len(pinned) == 0 {
						break
					}
					x := pinned[r.IntN(len(pinned))]
					x.pinned = false
					freedPinned = slices.DeleteFunc(freedPinned, func(y *ext) bool { return y == x })
					a.unpin(s, x.e)
				case k < 96:
					before := a.disk.used()
					a.reclaim()
					reclaimed += before - a.disk.used()
				default:
					f.FailAt = f.Ops() + r.IntN(2) // the next punch or truncate, or the one after
				}
				checkArena(t, a)
				if a.disk.used() > limit {
					t.Fatalf("step %d: disk in use %d past the budget %d", step, a.disk.used(), limit)
				}
			}
			t.Logf("%d allocations refused by the budget; %d bytes reclaimed by direct reclaims; %d frames", refused, reclaimed, len(s.frames))
			f.FailAt = -1
			for _, x := range live {
				if x.pinned {
					a.unpin(s, x.e)
				}
				a.free(x.e)
			}
			for _, x := range freedPinned {
				a.unpin(s, x.e)
			}
			live = nil
			a.settle(s)
			a.reclaim()
			checkArena(t, a)
			t.Logf("after freeing everything: %d bytes charged, %d slack, %d frames, zero-copy off: %v",
				a.disk.used(), a.slack.Load(), len(s.frames), a.noZeroCopy.Load())
			if a.slack.Load() != 0 {
				t.Errorf("slack %d after freeing everything and reclaiming", a.slack.Load())
			}
			if err := a.close(); err != nil {
				t.Fatal(err)
			}
			if a.disk.used() != 0 || a.slack.Load() != 0 {
				t.Errorf("after close: disk in use %d, slack %d", a.disk.used(), a.slack.Load())
			}
		})
	}
}

// punchCheckFS makes spill files that fail as f says, and call check
// before each punch.
type punchCheckFS struct{ f *Faults }

type punchCheckFile struct {
	faultyFile
	check func(off, n int64)
}

func (fs punchCheckFS) createTemp(dir, pattern string) (spillFile, error) {
	f, err := faultyFS(fs).createTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &punchCheckFile{faultyFile: f.(faultyFile), check: func(int64, int64) {}}, nil
}

func (pf *punchCheckFile) punch(off, n int64) error {
	pf.check(off, n)
	return pf.faultyFile.punch(off, n)
}

// gateFS makes spill files whose truncates and punches a test can hold up
// (gateFile), to interleave with a cut or a punch in flight.
type gateFS struct{}

func (gateFS) createTemp(dir, pattern string) (spillFile, error) {
	f, err := osFS{}.createTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &gateFile{osFile: f.(osFile)}, nil
}

// A gateFile is a spill file whose next Truncate, or next punch, can be
// held up at a gate (holdTruncate, holdPunch).
type gateFile struct {
	osFile
	mu                   sync.Mutex // guards the gates
	truncGate, punchGate *gate      // armed for the next call, or nil
}

// A gate holds up one call: the call sends its offset (a truncate, the
// size it truncates to) on entered, then returns what it receives on
// release: nil makes the call, errDone returns nil without making it (as
// if it had been made before the file was closed), and another error is
// returned instead of it.
type gate struct {
	entered chan int64
	release chan error
}

// holdTruncate arms a gate for the next Truncate of f; a test that ends
// without releasing it lets it through.
func (f *gateFile) holdTruncate(t *testing.T) *gate { return f.arm(t, &f.truncGate) }

// holdPunch arms a gate for the next punch of f.
func (f *gateFile) holdPunch(t *testing.T) *gate { return f.arm(t, &f.punchGate) }

func (f *gateFile) arm(t *testing.T, at **gate) *gate {
	g := &gate{entered: make(chan int64, 1), release: make(chan error, 1)}
	f.mu.Lock()
	*at = g
	f.mu.Unlock()
	t.Cleanup(func() {
		select {
		case g.release <- nil:
		default:
		}
	})
	return g
}

// pass waits at the gate armed at *at, if any, and disarms it.
func (f *gateFile) pass(at **gate, off int64) error {
	f.mu.Lock()
	g := *at
	*at = nil
	f.mu.Unlock()
	if g == nil {
		return nil
	}
	g.entered <- off
	return <-g.release
}

func (f *gateFile) Truncate(size int64) error {
	if err := f.pass(&f.truncGate, size); err != nil {
		return skipDone(err)
	}
	return f.osFile.Truncate(size)
}

func (f *gateFile) punch(off, n int64) error {
	if err := f.pass(&f.punchGate, off); err != nil {
		return skipDone(err)
	}
	return f.osFile.punch(off, n)
}

var (
	errInjected = errors.New("injected failure")
	errDone     = errors.New("done") // see gate
)

func skipDone(err error) error {
	if err == errDone {
		return nil
	}
	return err
}

// gated returns the gateFile of segment s.
func gated(s *segment) *gateFile { return s.f.(*gateFile) }

// goDo runs f in a goroutine, and returns a channel closed when it
// returns.
func goDo(f func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	return done
}

// extData tracks what the test wrote to which extent, to read it all back.
type extData map[extent]byte

// write fills extent e with byte b.
func (d extData) write(t *testing.T, a *arena, e extent, b byte) {
	t.Helper()
	if err := a.writeAt(e, 0, bytes.Repeat([]byte{b}, int(a.size(e)))); err != nil {
		t.Fatal(err)
	}
	d[e] = b
}

// check reads back every extent of d.
func (d extData) check(t *testing.T, a *arena) {
	t.Helper()
	for e, b := range d {
		p := make([]byte, a.size(e))
		if err := a.readAt(e, p); err != nil {
			t.Fatalf("extent at %d: %v", e.offset(), err)
		}
		if i := slices.IndexFunc(p, func(c byte) bool { return c != b }); i >= 0 {
			t.Fatalf("extent at %d: byte %d is %#x, want %#x", e.offset(), i, p[i], b)
		}
	}
}

// allocWrite allocates an extent of class c in a goroutine and writes b
// all over it at once, as a writer does; it sends the extent, or the
// error, on the channel it returns.
func allocWrite(a *arena, s *segment, c int, b byte) chan allocResult {
	res := make(chan allocResult, 1)
	go func() {
		e, err := a.alloc(s, c, nil)
		if err == nil {
			err = a.writeAt(e, 0, bytes.Repeat([]byte{b}, int(a.size(e))))
		}
		res <- allocResult{e, err}
	}()
	return res
}

type allocResult struct {
	e   extent
	err error
}

// hookWaits makes a's allocations that block for a punch or a cut in
// flight say so on the channel it returns.
func hookWaits(a *arena) <-chan struct{} {
	blocked := make(chan struct{}, 8)
	a.waitHook = func() { blocked <- struct{}{} }
	return blocked
}

// mustBlock fails t unless the allocation of res blocks (blocked) before
// it returns. If it returned, its result is put back for the test to go
// on and see what became of what it wrote.
func mustBlock(t *testing.T, blocked <-chan struct{}, res chan allocResult, what string) {
	t.Helper()
	select {
	case <-blocked:
	case r := <-res:
		t.Errorf("%s: returned (extent at %d, %v) without waiting", what, r.e.offset(), r.err)
		res <- r
	}
}

// TestArenaAllocWaitsForCutInFlight: while a settle's truncate cuts a
// frame off the end of the file, with the segment's lock released, an
// allocation that appends a frame, and one that takes another slot of
// that frame, both wait for the truncate to return before they write:
// what they write is then intact, and the frame cut off becomes a hole
// that is reused.
func TestArenaAllocWaitsForCutInFlight(t *testing.T) {
	a, s := testArenaCS(t, gateFS{}, 4096, 0)
	blocked := hookWaits(a)
	full, small := a.classOf(4096), a.classOf(1024)
	data := extData{}
	for i := range 3 { // frame 0
		data.write(t, a, mustAlloc(t, a, s, full), byte(1+i))
	}
	y := mustAlloc(t, a, s, full) // frame 1, alone
	if y.offset() != a.frame {
		t.Fatalf("extent at %d, want %d", y.offset(), a.frame)
	}
	a.free(y)
	g := gated(s).holdTruncate(t)
	settled := goDo(func() { a.settle(s) })
	if size := <-g.entered; size != a.frame {
		t.Fatalf("truncate to %d, want %d", size, a.frame)
	}
	wantDisk(t, a, 4*4096, 0) // frame 1 still charged while it is cut off

	r1 := allocWrite(a, s, small, 0x11) // appends frame 2
	mustBlock(t, blocked, r1, "an allocation appending a frame past a cut in flight")
	r2 := allocWrite(a, s, small, 0x22) // slot 1 of frame 2
	mustBlock(t, blocked, r2, "an allocation in a frame appended past a cut in flight")

	g.release <- nil
	<-settled
	for _, r := range []allocResult{<-r1, <-r2} {
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.e.offset() < 2*a.frame {
			t.Fatalf("extent at %d, in a frame being cut off", r.e.offset())
		}
		data[r.e] = map[bool]byte{true: 0x11, false: 0x22}[r.e.offset() == 2*a.frame]
	}
	data.check(t, a)
	wantDisk(t, a, 3*4096+4096, 0) // frame 1 is a hole now
	// The hole is reused first.
	e := mustAlloc(t, a, s, full)
	if e.offset() != a.frame {
		t.Fatalf("extent at %d, want the hole at %d", e.offset(), a.frame)
	}
	data.write(t, a, e, 0x33)
	data.check(t, a)
	wantDisk(t, a, 5*4096, 0)
}

// TestArenaAllocSkipsGranulesBeingPunched: while a reclaim punches slack
// out of a frame, with the segment's lock released, no allocation takes a
// slot over those granules: the frame is parked (a frame of a class, or a
// free one) and allocations go elsewhere; once the punch commits, the
// frame is allocated from again.
func TestArenaAllocSkipsGranulesBeingPunched(t *testing.T) {
	t.Run("class", func(t *testing.T) {
		a, s := testArenaCS(t, gateFS{}, 4096, 0)
		needPunch(t, s)
		small := a.classOf(1024)
		data := extData{}
		var exts []extent
		for i := range 12 { // frame 0: granule k holds slots 4k to 4k+3
			e := mustAlloc(t, a, s, small)
			data.write(t, a, e, byte(1+i))
			exts = append(exts, e)
		}
		for _, e := range exts[4:8] {
			a.free(e)
			delete(data, e)
		}
		a.settle(s) // 4 KiB of slack: not reclaimed yet
		wantDisk(t, a, 3*4096, 4096)

		g := gated(s).holdPunch(t)
		reclaimed := goDo(a.reclaim)
		if off := <-g.entered; off != 4096 {
			t.Fatalf("punch at %d, want 4096", off)
		}
		wantDisk(t, a, 3*4096, 0) // charged, no longer slack
		for i := range 2 {
			e := mustAlloc(t, a, s, small)
			if e.offset() < a.frame {
				t.Fatalf("extent at %d, over a granule being punched out", e.offset())
			}
			data.write(t, a, e, byte(0x40+i))
		}
		s.mu.Lock()
		parked := s.frames[0].parked
		s.mu.Unlock()
		if !parked {
			t.Error("frame 0 not parked")
		}
		g.release <- nil
		<-reclaimed
		wantDisk(t, a, 3*4096, 0) // granule 1 out, frame 1's granule 0 in
		e := mustAlloc(t, a, s, small)
		if e.offset() != 4096 {
			t.Fatalf("after the punch, extent at %d, want 4096", e.offset())
		}
		data.write(t, a, e, 0x50)
		data.check(t, a)
		wantDisk(t, a, 4*4096, 0)
	})
	t.Run("free", func(t *testing.T) {
		a, s := testArenaCS(t, gateFS{}, 4096, 0)
		needPunch(t, s)
		full := a.classOf(4096)
		data := extData{}
		for i := range 3 { // frame 0
			data.write(t, a, mustAlloc(t, a, s, full), byte(1+i))
		}
		y := mustAlloc(t, a, s, full)                               // frame 1
		data.write(t, a, mustAlloc(t, a, s, a.classOf(1024)), 0x10) // frame 2
		// Frame 1 emptied, and its punch fails: a free frame of slack.
		a.free(y)
		g := gated(s).holdPunch(t)
		settled := goDo(func() { a.settle(s) })
		if off := <-g.entered; off != a.frame {
			t.Fatalf("punch at %d, want %d", off, a.frame)
		}
		g.release <- errInjected
		<-settled
		wantDisk(t, a, 5*4096, 4096)

		g = gated(s).holdPunch(t)
		reclaimed := goDo(a.reclaim)
		if off := <-g.entered; off != a.frame {
			t.Fatalf("punch at %d, want %d", off, a.frame)
		}
		e := mustAlloc(t, a, s, full)
		if e.offset() != 3*a.frame {
			t.Fatalf("extent at %d, want %d: not in the free frame being punched", e.offset(), 3*a.frame)
		}
		data.write(t, a, e, 0x20)
		wantDisk(t, a, 6*4096, 0)
		g.release <- nil
		<-reclaimed
		wantDisk(t, a, 5*4096, 0)
		e = mustAlloc(t, a, s, full) // frame 3's next slot
		data.write(t, a, e, 0x21)
		e = mustAlloc(t, a, s, full)
		data.write(t, a, e, 0x22)
		e = mustAlloc(t, a, s, full) // the free frame, back in use
		if e.offset() != a.frame {
			t.Fatalf("extent at %d, want the free frame at %d", e.offset(), a.frame)
		}
		data.write(t, a, e, 0x23)
		data.check(t, a)
		wantDisk(t, a, 8*4096, 0)
	})
}

// TestArenaCloseInFlight: closing the arena while a punch or a cut is in
// flight (after its buffers freed everything, as Manager.Close does) gives
// everything back to the disk budget at once; the punch or cut then
// finishes, on a closed file, and gives back nothing more: nothing is
// charged, no slack is counted, nothing is left in flight.
func TestArenaCloseInFlight(t *testing.T) {
	// done checks that nothing is charged, nor counted as slack, and, once
	// the punch or cut has finished (landed), that nothing is in flight.
	done := func(t *testing.T, a *arena, landed bool) {
		t.Helper()
		n := int64(0)
		if landed {
			n = a.inFlight()
		}
		if used, slack := a.disk.used(), a.slack.Load(); used != 0 || slack != 0 || n != 0 {
			t.Fatalf("after close: disk in use %d, slack %d, %d in flight; want 0", used, slack, n)
		}
	}
	for _, how := range []error{nil, errDone} {
		closeInFlight(t, how, done)
	}
}

// closeInFlight runs TestArenaCloseInFlight with the punch or truncate
// in flight ending as how says (see gate): nil, failing on the closed
// file; errDone, as if made before the file was closed.
func closeInFlight(t *testing.T, how error, done func(*testing.T, *arena, bool)) {
	name := map[error]string{nil: "closed", errDone: "done"}[how]
	t.Run("punch/"+name, func(t *testing.T) {
		a, s := testArenaCS(t, gateFS{}, 4096, 0)
		needPunch(t, s)
		small := a.classOf(1024)
		var exts []extent
		for range 12 {
			e := mustAlloc(t, a, s, small)
			fill(t, a, e)
			exts = append(exts, e)
		}
		for _, e := range exts[4:8] {
			a.free(e)
		}
		g := gated(s).holdPunch(t)
		reclaimed := goDo(a.reclaim)
		<-g.entered
		for _, e := range slices.Concat(exts[:4], exts[8:]) {
			a.free(e)
		}
		a.settle(s) // frame 0 waits for the punch to commit
		wantDisk(t, a, 3*4096, 0)
		if err := a.close(); err != nil {
			t.Fatal(err)
		}
		done(t, a, false)
		g.release <- how
		<-reclaimed
		done(t, a, true)
	})
	t.Run("cut/"+name, func(t *testing.T) {
		a, s := testArenaCS(t, gateFS{}, 4096, 0)
		full := a.classOf(4096)
		var exts []extent
		for range 4 { // frame 0, and one in frame 1
			e := mustAlloc(t, a, s, full)
			fill(t, a, e)
			exts = append(exts, e)
		}
		a.free(exts[3])
		g := gated(s).holdTruncate(t)
		settled := goDo(func() { a.settle(s) })
		<-g.entered
		for _, e := range exts[:3] {
			a.free(e)
		}
		a.settle(s) // frame 0: punched out, or slack, while the cut is in flight
		if err := a.close(); err != nil {
			t.Fatal(err)
		}
		done(t, a, false)
		g.release <- how
		<-settled
		done(t, a, true)
	})
}

// TestArenaBudgetWaitsForLanding: an allocation refused by the disk budget
// while a punch is in flight waits for it to land, and then succeeds in
// the space it gave back.
func TestArenaBudgetWaitsForLanding(t *testing.T) {
	a, s := testArenaCS(t, gateFS{}, 4096, 3*4096)
	needPunch(t, s)
	blocked := hookWaits(a)
	small := a.classOf(1024)
	data := extData{}
	var exts []extent
	for i := range 12 { // frame 0: the whole budget
		e := mustAlloc(t, a, s, small)
		data.write(t, a, e, byte(1+i))
		exts = append(exts, e)
	}
	for _, e := range exts[4:8] {
		a.free(e)
		delete(data, e)
	}
	a.settle(s)
	wantDisk(t, a, 3*4096, 4096)
	g := gated(s).holdPunch(t)
	reclaimed := goDo(a.reclaim)
	<-g.entered
	res := allocWrite(a, s, small, 0x77)
	mustBlock(t, blocked, res, "an allocation refused by the disk budget while a punch is in flight")
	g.release <- nil
	<-reclaimed
	r := <-res
	if r.err != nil {
		t.Fatalf("after the punch landed: %v", r.err)
	}
	if off := r.e.offset(); off < 4096 || off >= 2*4096 {
		t.Fatalf("extent at %d, want it in the granule punched out", off)
	}
	data[r.e] = 0x77
	data.check(t, a)
	wantDisk(t, a, 3*4096, 0)
}

// TestArenaFailedCutKeepsFrames: a truncate that fails leaves the frames it
// would have cut off as they were (a free frame keeps its slack) or
// punches them out (a recycled one); an allocation that appended a frame
// meanwhile waited for it and wrote intact; every frame is usable after.
func TestArenaFailedCutKeepsFrames(t *testing.T) {
	a, s := testArenaCS(t, gateFS{}, 4096, 0)
	needPunch(t, s)
	blocked := hookWaits(a)
	full := a.classOf(4096)
	data := extData{}
	for i := range 3 { // frame 0
		data.write(t, a, mustAlloc(t, a, s, full), byte(1+i))
	}
	y := mustAlloc(t, a, s, full) // frame 1
	z := mustAlloc(t, a, s, full) // frame 1
	w := mustAlloc(t, a, s, full) // frame 1
	v := mustAlloc(t, a, s, full) // frame 2
	fill(t, a, v)
	// Frame 1 emptied, and its punch fails: a free frame of slack.
	for _, e := range []extent{y, z, w} {
		a.free(e)
	}
	g := gated(s).holdPunch(t)
	settled := goDo(func() { a.settle(s) })
	<-g.entered
	g.release <- errInjected
	<-settled
	wantDisk(t, a, 7*4096, 3*4096)
	// Frame 2 emptied: frames 1 and 2 cut off, and the truncate fails.
	a.free(v)
	g = gated(s).holdTruncate(t)
	settled = goDo(func() { a.settle(s) })
	if size := <-g.entered; size != a.frame {
		t.Fatalf("truncate to %d, want %d", size, a.frame)
	}
	res := allocWrite(a, s, full, 0x55) // appends frame 3
	mustBlock(t, blocked, res, "an allocation appending a frame past a cut in flight")
	g.release <- errInjected
	<-settled
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.e.offset() != 3*a.frame {
		t.Fatalf("extent at %d, want %d", r.e.offset(), 3*a.frame)
	}
	data[r.e] = 0x55
	data.check(t, a)
	// Frame 1 keeps its slack; frame 2 was punched out instead.
	wantDisk(t, a, 3*4096+3*4096+4096, 3*4096)
	// Every frame is usable: frame 3's slots, then frame 1 (its slack
	// reused, for nothing), then frame 2.
	want := []int64{3*a.frame + 4096, 3*a.frame + 8192, a.frame, a.frame + 4096, a.frame + 8192, 2 * a.frame}
	for i, off := range want {
		e := mustAlloc(t, a, s, full)
		if e.offset() != off {
			t.Fatalf("allocation %d at %d, want %d", i, e.offset(), off)
		}
		data.write(t, a, e, byte(0x60+i))
	}
	data.check(t, a)
	wantDisk(t, a, 10*4096, 0)
}

// TestArenaConcurrentGiveBack runs writers that allocate, write, free,
// settle and reclaim at once in one segment, so that punches and cuts in
// flight (with the segment's lock released) meet allocations, on the real
// file system: every extent reads back what its writer wrote, and once all
// is freed and the arena closed, nothing is charged.
func TestArenaConcurrentGiveBack(t *testing.T) {
	a, s := testArenaCS(t, osFS{}, 4096, 0)
	workers, ops := 8, 3000
	if testing.Short() {
		ops = 500
	}
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			mine := extData{}
			var exts []extent
			check := func(e extent) error {
				p := make([]byte, a.size(e))
				if err := a.readAt(e, p); err != nil {
					return err
				}
				if i := slices.IndexFunc(p, func(c byte) bool { return c != mine[e] }); i >= 0 {
					return fmt.Errorf("extent at %d: byte %d is %#x, want %#x", e.offset(), i, p[i], mine[e])
				}
				return nil
			}
			for i := range ops {
				switch op := rng.IntN(10); {
				case op < 5 || len(exts) == 0:
					e, err := a.alloc(s, rng.IntN(len(a.classes)), nil)
					if err != nil {
						errs <- err
						return
					}
					b := byte(w*31 + i)
					if err := a.writeAt(e, 0, bytes.Repeat([]byte{b}, int(a.size(e)))); err != nil {
						errs <- err
						return
					}
					mine[e] = b
					exts = append(exts, e)
				case op < 9:
					k := rng.IntN(len(exts))
					e := exts[k]
					if err := check(e); err != nil {
						errs <- err
						return
					}
					exts = slices.Delete(exts, k, k+1)
					delete(mine, e)
					a.free(e)
					a.settle(s)
				default:
					a.reclaim()
				}
			}
			for _, e := range exts {
				if err := check(e); err != nil {
					errs <- err
					return
				}
				a.free(e)
			}
			a.settle(s)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	a.reclaim()
	checkArena(t, a)
	if n := a.inFlight(); n != 0 {
		t.Fatalf("%d punches or cuts in flight", n)
	}
	if err := a.close(); err != nil {
		t.Fatal(err)
	}
	if used := a.disk.used(); used != 0 {
		t.Fatalf("disk in use %d after close", used)
	}
}

// TestPrepareCreatesFirstSegment: once the memory in use first reaches
// half the budget, the first spill file is created in the background,
// before anything spills; the first spill then uses it.
func TestPrepareCreatesFirstSegment(t *testing.T) {
	const cs = 4 << 10
	m, b := managerWith(t, Options{ChunkSize: cs, MemoryBudget: 16 * cs, TempDir: t.TempDir()})
	defer m.Close()
	if _, err := b.Write(make([]byte, 7*cs)); err != nil {
		t.Fatal(err)
	}
	m.arena.early.Wait()
	if st := m.Stats(); st.SpillFiles != 0 {
		t.Fatalf("below half the budget: %d spill files, want 0", st.SpillFiles)
	}
	if _, err := b.Write(make([]byte, cs)); err != nil {
		t.Fatal(err)
	}
	m.arena.early.Wait()
	if st := m.Stats(); st.SpillFiles != 1 || st.Spills != 0 {
		t.Fatalf("at half the budget: %d spill files, %d spills; want 1, 0", st.SpillFiles, st.Spills)
	}
	first := m.arena.segment(0)
	if err := b.Rollover(); err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.SpillFiles != 1 || m.arena.segment(0) != first {
		t.Errorf("the first spill made another file: %d spill files", st.SpillFiles)
	}
}

// TestPrepareFailureLeftToFirstSpill: a spill file that cannot be created
// ahead is created at the first spill, which reports its error if it
// fails then too; Close waits for a creation in progress, and leaves no
// file open.
func TestPrepareFailureLeftToFirstSpill(t *testing.T) {
	const cs = 4 << 10
	for _, times := range []int{1, 2} {
		f := &Faults{FailAt: 0, Times: times, Err: syscall.ENOSPC}
		m, err := newManager(Options{ChunkSize: cs, MemoryBudget: 4 * cs, TempDir: t.TempDir()}, faultyFS{f})
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.NewBuffer()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Write(make([]byte, 2*cs)); err != nil {
			t.Fatal(err)
		}
		m.arena.early.Wait()
		if st := m.Stats(); st.SpillFiles != 0 {
			t.Fatalf("a creation ahead that failed left %d spill files", st.SpillFiles)
		}
		err = b.Rollover()
		if times == 1 && (err != nil || !b.OnDisk()) {
			t.Errorf("first spill after a failed creation ahead: %v, on disk %v", err, b.OnDisk())
		}
		if times == 2 && !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("first spill that cannot create its file either: %v, want ENOSPC", err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if st := m.Stats(); st.SpillFiles != 0 {
			t.Errorf("after Close: %d spill files", st.SpillFiles)
		}
	}
}

// TestPrepareRacesClose: Managers closed while their first spill file is
// being created ahead close it, or never create it.
func TestPrepareRacesClose(t *testing.T) {
	const cs = 4 << 10
	for range 50 {
		m, b := managerWith(t, Options{ChunkSize: cs, MemoryBudget: 2 * cs, TempDir: t.TempDir()})
		if _, err := b.Write(make([]byte, cs)); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if n := m.arena.open.Load(); n != 0 {
			t.Fatalf("%d spill files open after Close", n)
		}
	}
}

// TestArenaReclaimLargestRunsFirst: slack past max(live/8, 1 MiB) is
// reclaimed by settle from its largest runs, until it is under three
// quarters of that bound, not all at once; and a reclaim (as when the disk
// budget refuses an extent) still punches out all of it.
func TestArenaReclaimLargestRunsFirst(t *testing.T) {
	a, s := testArenaCS(t, osFS{}, 64<<10, 0)
	needPunch(t, s)
	full := a.classOf(64 << 10)
	var e [48]extent // 16 frames of 3 chunks
	for i := range e {
		e[i] = mustAlloc(t, a, s, full)
		if want := int64(i/3)*a.frame + int64(i%3)<<16; e[i].offset() != want {
			t.Fatalf("extent %d at %d, want %d", i, e[i].offset(), want)
		}
	}
	// Frames 0-7: runs of 128 KiB of slack; frames 8-15: runs of 64 KiB.
	// Every frame keeps its last extent: none is emptied.
	for f := range 16 {
		a.free(e[3*f])
		if f < 8 {
			a.free(e[3*f+1])
		}
	}
	wantDisk(t, a, 48<<16, 24<<16) // 1.5 MiB of slack, over the 1 MiB bound
	a.settle(s)
	// Down to three quarters of the bound: six of the 128 KiB runs go.
	wantDisk(t, a, 48<<16-12<<16, 12<<16)
	s.mu.Lock()
	var big, small int
	for i := range 16 {
		n := s.slackOf(&s.frames[i]).count() * int(a.gran)
		switch {
		case i < 8 && n == 2<<16:
			big++
		case i < 8 && n != 0:
			t.Errorf("frame %d: %d bytes of slack, want 128 KiB or none", i, n)
		case i >= 8 && n == 1<<16:
			small++
		case i >= 8:
			t.Errorf("frame %d: %d bytes of slack, want its 64 KiB run kept", i, n)
		}
	}
	s.mu.Unlock()
	if big != 2 || small != 8 {
		t.Errorf("runs left: %d of 128 KiB and %d of 64 KiB, want 2 and 8", big, small)
	}
	a.reclaim()
	wantDisk(t, a, 48<<16-24<<16, 0)
}

// TestSegmentLockExcludes checks that segment.lock (a spinMutex) gives the mutex to one
// goroutine at a time, whether it takes it at once, while trying, or after
// waiting for a holder that keeps it past the tries (one goroutine yields
// its CPU while holding it).
func TestSegmentLockExcludes(t *testing.T) {
	s := &segment{a: &arena{spins: lockSpins}}
	const goroutines, rounds = 8, 2000
	var inside atomic.Int32
	n := 0 // guarded by s.mu: the race detector sees any overlap
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range rounds {
				s.lock()
				if inside.Add(1) != 1 {
					t.Error("segment.lock: two holders at once")
				}
				n++
				if g == 0 && i%50 == 0 {
					for range 3 {
						runtime.Gosched()
					}
				}
				inside.Add(-1)
				s.mu.Unlock()
			}
		})
	}
	wg.Wait()
	if n != goroutines*rounds {
		t.Fatalf("count %d, want %d", n, goroutines*rounds)
	}
}

// TestArenaReclaimLooksAgain checks that reclaim, which finds the slack
// runs and marks them in two passes over the frames, each releasing the
// segment's lock every reclaimSlice frames, marks only what is still slack
// when it marks: granules allocated in between are neither punched out
// (their bytes read back) nor uncharged.
func TestArenaReclaimLooksAgain(t *testing.T) {
	a, s := testArenaCS(t, osFS{}, 64<<10, 0)
	needPunch(t, s)
	full := a.classOf(64 << 10)
	frames := 2*reclaimSlice + 10
	e := make([]extent, 3*frames)
	for i := range e {
		e[i] = mustAlloc(t, a, s, full)
	}
	for f := range frames { // 64 KiB of slack in each frame, none emptied
		a.free(e[3*f])
	}
	runs, found := s.slackRuns(nil)
	if len(runs) != frames || found != int64(frames)<<16 {
		t.Fatalf("found %d runs, %d bytes; want %d, %d", len(runs), found, frames, int64(frames)<<16)
	}
	// In between, five of those slots are taken again, and written.
	const again = 5
	var taken [again]extent
	for i := range taken {
		taken[i] = mustAlloc(t, a, s, full)
		if err := a.writeAt(taken[i], 0, bytes.Repeat([]byte{byte(0xa0 + i)}, 64<<10)); err != nil {
			t.Fatal(err)
		}
	}
	h := holes{s: s}
	if marked := s.markRuns(&h, runs); marked != int64(frames-again)<<16 {
		t.Fatalf("marked %d bytes, want %d", marked, int64(frames-again)<<16)
	}
	if err := h.punch(); err != nil {
		t.Fatal(err)
	}
	wantDisk(t, a, int64(3*frames-(frames-again))<<16, 0)
	for i, x := range taken {
		p := make([]byte, 64<<10)
		if err := a.readAt(x, p); err != nil {
			t.Fatal(err)
		}
		if j := slices.IndexFunc(p, func(c byte) bool { return c != byte(0xa0+i) }); j >= 0 {
			t.Fatalf("extent taken in between, at %d: byte %d is %#x after the reclaim", x.offset(), j, p[j])
		}
	}
}
