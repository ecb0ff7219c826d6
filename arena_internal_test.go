package spool

import (
	"errors"
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
		e, err := a.alloc(s, full)
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
	if e, _ := a.alloc(s, full); e.offset() != 4096 {
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
	if e, _ := a.alloc(s, small); e.offset() != 0 || a.classes[small] != 1024 {
		t.Errorf("a %d-byte extent at %d after all were freed, want 0", a.classes[small], e.offset())
	}
}

// TestArenaTaintedExtentNotReused: an extent a zero-copy send read is not
// reused when freed while its frame holds live extents (the kernel may
// still hold its pages); once its frame is free and punched out, it is.
func TestArenaTaintedExtentNotReused(t *testing.T) {
	a, s := testArena(t, osFS{})
	full := a.classOf(4096)
	e0, _ := a.alloc(s, full)
	e1, _ := a.alloc(s, full)
	s.pin(e1.offset())
	a.unpin(s, e1)
	a.free(e1)
	if got := a.disk.used(); got != 2*4096 {
		t.Errorf("disk in use %d with a dead extent, want it counted: %d", got, 2*4096)
	}
	e2, _ := a.alloc(s, full)
	if e2.offset() == e1.offset() {
		t.Fatalf("the tainted extent at %d was reused while its frame was in use", e1.offset())
	}
	a.free(e0)
	a.free(e2)
	a.settle(s)
	if got := a.disk.used(); got != 0 {
		t.Errorf("disk in use %d once the frame was recycled", got)
	}
	if e3, _ := a.alloc(s, full); e3.offset() != 0 {
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
	e0, _ := a.alloc(s, full)
	e1, _ := a.alloc(s, full)
	_, _ = a.alloc(s, full)
	e3, _ := a.alloc(s, full) // the second frame: the first is not the last
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
		if e, _ := a.alloc(s, full); e.offset() < 12288 {
			t.Fatalf("an extent at %d, in the lost frame", e.offset())
		}
	}
	a.free(e3)
}
