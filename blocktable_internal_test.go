package spool

import (
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestBlockTable checks the block table against a map, across the dense
// part and the pages, with and without seals, through sets and drops.
func TestBlockTable(t *testing.T) {
	if got := unsafe.Sizeof(baseMeta{}); got != 16 {
		t.Errorf("baseMeta takes %d bytes per block, want 16", got)
	}
	for _, sealed := range []bool{false, true} {
		var tb blockTable
		if sealed {
			tb.seals = new(table[sealMeta])
		}
		model := map[int64]blockMeta{}
		r := rand.New(rand.NewPCG(3, 4))
		index := func() int64 {
			switch r.IntN(3) {
			case 0:
				return r.Int64N(64) // dense, small
			case 1:
				return denseBlocks - 8 + r.Int64N(16) // across the boundary
			}
			return denseBlocks + r.Int64N(4*metaPageLen) // pages
		}
		for step := range 5000 {
			i := index()
			if r.IntN(20) == 0 {
				tb.dropFrom(i, func(extent, uint32) {})
				for k := range model {
					if k >= i {
						delete(model, k)
					}
				}
				continue
			}
			m := blockMeta{ext: makeExtent(0, r.IntN(13), r.Int64N(1<<39)<<extentUnit), n: uint32(r.IntN(1<<20) + 1), sum: r.Uint64()}
			m.valid = uint32(r.IntN(int(m.n) + 1))
			if sealed {
				m.ctr = r.Uint64()
				m.tag[r.IntN(16)] = byte(step)
			}
			tb.set(i, m)
			model[i] = m
			j := index()
			if got, want := tb.get(j), model[j]; got != want {
				t.Fatalf("sealed %v, step %d: block %d is %+v, want %+v", sealed, step, j, got, want)
			}
		}
		for k, want := range model {
			if got := tb.get(k); got != want {
				t.Fatalf("sealed %v: block %d is %+v, want %+v", sealed, k, got, want)
			}
		}
	}
}
