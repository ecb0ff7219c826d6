package spool

// blockMeta describes block i of a spill: its first n bytes were written
// (sealed) as a unit in extent ext, of which the first valid are the
// block's data (Truncate can shorten valid without rewriting the block);
// bytes past valid read as zero. n == 0 means the block was never
// written: a hole, with no extent.
type blockMeta struct {
	ext      extent
	n, valid uint32
	sum      uint64   // CRC-64/NVME of the n bytes, without a sealer
	ctr      uint64   // nonce counter of the seal, with a sealer
	tag      [16]byte // GCM tag of the seal, with a sealer
}

// blockTable holds the blockMeta of every block of a spill, in RAM
// outside the budget. It stores them so that the common case stays small:
// 16 bytes per block always, the extent's offset and class and the
// block's length packed in a word (packed) and the checksum; the segment
// once for all (every block of a spill is in its segment); the valid
// length only for the few blocks a Truncate cut (cut); and the 24 bytes of
// a seal (nonce counter and GCM tag) only for a spill with a sealer (seals
// is not nil).
type blockTable struct {
	seg   int // segment of every extent
	base  table[baseMeta]
	cut   map[int64]uint32 // valid, for blocks whose valid < n
	seals *table[sealMeta]
}

type baseMeta struct {
	w   packed
	sum uint64
}

// packed is a block's extent and length in a word: the extent's offset in
// units of 512 bytes in the low 39 bits (up to 256 TiB), its class in the
// next 4, and the block's length n in the top 21 (up to a chunk, 1 MiB).
// The zero word is a hole.
type packed uint64

func pack(e extent, n uint32) packed {
	if e == 0 {
		return 0
	}
	return packed(uint64(e.offset()>>extentUnit) | uint64(e.class())<<39 | uint64(n)<<43)
}

func (p packed) n() uint32 { return uint32(p >> 43) }

func (p packed) extent(seg int) extent {
	if p == 0 {
		return 0
	}
	return makeExtent(seg, int(p>>39&0xf), int64(p&(1<<39-1))<<extentUnit)
}

type sealMeta struct {
	ctr uint64
	tag [16]byte
}

func (t *blockTable) get(i int64) blockMeta {
	b := t.base.get(i)
	n := b.w.n()
	m := blockMeta{ext: b.w.extent(t.seg), n: n, valid: n, sum: b.sum}
	if v, ok := t.cut[i]; ok {
		m.valid = v
	}
	if t.seals != nil {
		s := t.seals.get(i)
		m.ctr, m.tag = s.ctr, s.tag
	}
	return m
}

func (t *blockTable) set(i int64, m blockMeta) {
	t.base.set(i, baseMeta{w: pack(m.ext, m.n), sum: m.sum})
	if m.valid != m.n {
		if t.cut == nil {
			t.cut = make(map[int64]uint32)
		}
		t.cut[i] = m.valid
	} else if t.cut != nil {
		delete(t.cut, i)
	}
	if t.seals != nil {
		t.seals.set(i, sealMeta{ctr: m.ctr, tag: m.tag})
	}
}

// dropFrom forgets every block from i on, calling each with the extent
// and length of each block it forgets that has an extent.
func (t *blockTable) dropFrom(i int64, each func(e extent, n uint32)) {
	t.base.dropFrom(i, func(m baseMeta) {
		if m.w != 0 {
			each(m.w.extent(t.seg), m.w.n())
		}
	})
	for k := range t.cut {
		if k >= i {
			delete(t.cut, k)
		}
	}
	if t.seals != nil {
		t.seals.dropFrom(i, nil)
	}
}

// table maps block indexes to entries of type E, zero if never set: a
// slice for the first denseBlocks blocks, grown as they are written, so a
// small spilled buffer costs a few entries; pages of metaPageLen entries
// past that, allocated as blocks are written, so that a large buffer's
// table grows without copying itself (a slice grown by append leaves as
// much garbage as it holds), and a sparse one (a write at 1<<40) costs one
// page, not a table of every block before it.
type table[E any] struct {
	dense []E
	pages map[int64]*[metaPageLen]E
}

const (
	denseBlocks = 64  // 2 MiB of 32 KiB blocks: 1 KiB of baseMeta
	metaPageLen = 256 // 4 KiB of baseMeta
)

func (t *table[E]) get(i int64) E {
	if i < denseBlocks {
		if i < int64(len(t.dense)) {
			return t.dense[i]
		}
		var zero E
		return zero
	}
	if p := t.pages[i/metaPageLen]; p != nil {
		return p[i%metaPageLen]
	}
	var zero E
	return zero
}

func (t *table[E]) set(i int64, e E) {
	if i < denseBlocks {
		if n := int(i) + 1; n > len(t.dense) {
			t.dense = append(t.dense, make([]E, n-len(t.dense))...)
		}
		t.dense[i] = e
		return
	}
	p := t.pages[i/metaPageLen]
	if p == nil {
		if t.pages == nil {
			t.pages = make(map[int64]*[metaPageLen]E)
		}
		p = new([metaPageLen]E)
		t.pages[i/metaPageLen] = p
	}
	p[i%metaPageLen] = e
}

// dropFrom forgets every entry from i on, calling each, if not nil, with
// each entry it forgets.
func (t *table[E]) dropFrom(i int64, each func(E)) {
	visit := func(es []E) {
		if each != nil {
			for _, e := range es {
				each(e)
			}
		}
		clear(es)
	}
	if i < int64(len(t.dense)) {
		visit(t.dense[i:])
		t.dense = t.dense[:i]
	}
	for k, p := range t.pages {
		switch {
		case k*metaPageLen >= i:
			visit(p[:])
			delete(t.pages, k)
		case (k+1)*metaPageLen > i:
			visit(p[i-k*metaPageLen:])
		}
	}
}
