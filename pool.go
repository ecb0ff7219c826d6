package spool

import "sync"

// chunkPool recycles the fixed-size chunks that hold in-memory buffer data.
// A chunk taken from the pool may hold bytes of an earlier buffer; the
// buffer code never shows a byte it has not written or zeroed itself (see
// the invariant on store.chunks), so the pool does not clear chunks.
//
// Chunks are kept as *[]byte so that Put does not allocate.
type chunkPool struct {
	size int
	p    sync.Pool

	// poison, when non-zero, is written over every chunk given back.
	// Tests set it (export_test.go) to prove that no stale byte leaks into
	// another buffer.
	poison byte
}

func newChunkPool(size int) *chunkPool {
	cp := &chunkPool{size: size}
	cp.p.New = func() any {
		b := make([]byte, size)
		return &b
	}
	return cp
}

// get returns a chunk of exactly cp.size bytes with unspecified contents.
func (cp *chunkPool) get() *[]byte {
	return cp.p.Get().(*[]byte)
}

// put gives a chunk back. The caller must not use it afterwards.
func (cp *chunkPool) put(c *[]byte) {
	if cp.poison != 0 {
		b := *c
		for i := range b {
			b[i] = cp.poison
		}
	}
	cp.p.Put(c)
}
