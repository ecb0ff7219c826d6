package spool

import (
	"slices"
	"testing"
	"unsafe"
)

// TestSizeClasses checks the classes of every chunk size: from minClass up
// to the chunk size, each at most 1.25 times the one before, Go's own size
// classes up to 32 KiB (goClasses) and whole 8 KiB pages above; classFor
// and classBelow find the tightest class either way.
func TestSizeClasses(t *testing.T) {
	for cs := MinChunkSize; cs <= MaxChunkSize; cs *= 2 {
		a := newMemory(cs, 1<<20)
		c := a.classes
		if c[0] != minClass || c[len(c)-1] != cs || a.chunkSize() != cs {
			t.Fatalf("chunk size %d: classes from %d to %d", cs, c[0], c[len(c)-1])
		}
		for i, size := range c {
			switch {
			case size <= 32<<10 && !slices.Contains(goClasses, size):
				t.Errorf("chunk size %d: class %d is not one of Go's size classes", cs, size)
			case size > 32<<10 && size%(8<<10) != 0:
				t.Errorf("chunk size %d: class %d is not a whole number of 8 KiB pages", cs, size)
			case i > 0 && (size <= c[i-1] || size*4 > c[i-1]*5):
				t.Errorf("chunk size %d: class %d after %d: not ascending within 1.25x", cs, size, c[i-1])
			}
		}
		for n := 1; n <= cs; n += 1 + n/37 {
			up, down := a.classFor(n), a.classBelow(n)
			if up < n || (up > minClass && up*4 > max(n, minClass)*5) {
				t.Errorf("chunk size %d: classFor(%d) = %d", cs, n, up)
			}
			if i := slices.Index(c, up); i < 0 || (i > 0 && c[i-1] >= n) {
				t.Errorf("chunk size %d: classFor(%d) = %d is not the smallest class that fits", cs, n, up)
			}
			if n >= minClass && (down > n || slices.Index(c, down) < 0) {
				t.Errorf("chunk size %d: classBelow(%d) = %d", cs, n, down)
			}
			if i := slices.Index(c, down); n >= minClass && i+1 < len(c) && c[i+1] <= n {
				t.Errorf("chunk size %d: classBelow(%d) = %d is not the largest class that fits", cs, n, down)
			}
		}
		for _, size := range c {
			p := a.get(size)
			if len(*p) != size {
				t.Fatalf("get(%d) returned %d bytes", size, len(*p))
			}
			a.put(p)
		}
	}
}

// TestFreeListsFollowDemand: with the slack full of one class, a slice of
// another class given back takes the place of one of the first class
// (memory.put drops the class holding the most bytes), so the class given
// back last is the one a get finds again; the slack is never exceeded;
// and a slice given back when no other class holds any is dropped.
func TestFreeListsFollowDemand(t *testing.T) {
	const slack = 64 << 10
	a := newMemory(64<<10, slack)
	var olds []*[]byte
	for range slack / 1024 {
		olds = append(olds, a.get(1024))
	}
	for _, p := range olds {
		a.put(p)
	}
	if got := a.held.Load(); got != slack {
		t.Fatalf("held %d bytes after filling the slack with 1 KiB slices, want %d", got, slack)
	}
	fresh := a.get(4096)
	a.put(fresh)
	if got := a.held.Load(); got > slack {
		t.Fatalf("held %d bytes, more than the slack of %d", got, slack)
	}
	if got := a.lists[slices.Index(a.classes, 1024)].bytes.Load(); got != slack-4096 {
		t.Errorf("1 KiB free list holds %d bytes after a 4 KiB slice was given back, want %d", got, slack-4096)
	}
	if again := a.get(4096); again != fresh {
		t.Error("the 4 KiB slice given back last was dropped: get allocated a new one")
	}
	for i := range a.lists {
		l := &a.lists[i]
		if got, want := l.bytes.Load(), int64(len(l.items)*a.classes[i]); got != want {
			t.Errorf("free list of class %d counts %d bytes for %d slices", a.classes[i], got, len(l.items))
		}
	}

	// Only one class in the slack, and it is full: a slice of that class
	// given back is dropped, not kept past the slack.
	b := newMemory(64<<10, 4096)
	p, q := b.get(4096), b.get(4096)
	b.put(p)
	b.put(q)
	if got := b.held.Load(); got != 4096 {
		t.Errorf("held %d bytes with a slack of 4096", got)
	}
}

// TestStoreSizeClass checks that a buffer's state stays within 288 bytes
// on 64-bit systems, a size class of Go's allocator: the next is 320, and
// a field added past it (store.making was, at first) costs 32 bytes per
// buffer, 3 MiB at 100,000 blobs, outside the budget. A spill's state
// stays within 112, for the same reason (the next class is 128).
func TestStoreSizeClass(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes checked on 64-bit systems")
	}
	if n := unsafe.Sizeof(store{}); n > 288 {
		t.Errorf("store is %d bytes, past the 288-byte size class", n)
	}
	if n := unsafe.Sizeof(spill{}); n > 112 {
		t.Errorf("spill is %d bytes, past the 112-byte size class", n)
	}
}
