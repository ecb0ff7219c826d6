package spool

// blockMeta describes block i of a blockFile: its first n bytes were
// written (sealed) as a unit, of which the first valid are the block's
// data (Truncate can shorten valid without rewriting the block); bytes past
// valid read as zero. n == 0 means the block was never written: a hole.
type blockMeta struct {
	n, valid uint32
	crc      uint32   // CRC-32C of the n bytes, without a sealer
	ctr      uint64   // nonce counter of the last seal, with a sealer
	tag      [16]byte // GCM tag of the last seal, with a sealer
}

// blockTable holds the blockMeta of every block of a blockFile, in RAM
// outside the budget. It stores them in two parts so that the common case
// stays small: 12 bytes per 64 KiB block (n, valid and the CRC-32C)
// always, and the 24 bytes of a seal (nonce counter and GCM tag) only for
// a file with a sealer (seals is not nil).
type blockTable struct {
	base  table[baseMeta]
	seals *table[sealMeta]
}

type baseMeta struct{ n, valid, crc uint32 }

type sealMeta struct {
	ctr uint64
	tag [16]byte
}

func (t *blockTable) get(i int64) blockMeta {
	b := t.base.get(i)
	m := blockMeta{n: b.n, valid: b.valid, crc: b.crc}
	if t.seals != nil {
		s := t.seals.get(i)
		m.ctr, m.tag = s.ctr, s.tag
	}
	return m
}

func (t *blockTable) set(i int64, m blockMeta) {
	t.base.set(i, baseMeta{n: m.n, valid: m.valid, crc: m.crc})
	if t.seals != nil {
		t.seals.set(i, sealMeta{ctr: m.ctr, tag: m.tag})
	}
}

// dropFrom forgets every block from i on, and returns the sum of their n.
func (t *blockTable) dropFrom(i int64) int64 {
	var n int64
	t.base.dropFrom(i, func(m baseMeta) { n += int64(m.n) })
	if t.seals != nil {
		t.seals.dropFrom(i, nil)
	}
	return n
}

// table maps block indexes to entries of type E, zero if never set: a
// slice for the first denseBlocks blocks, grown as they are written, so a
// small spilled buffer costs a few entries; pages of metaPageLen entries
// past that, allocated as blocks are written, so a sparse file (a write at
// 1<<40) costs one page, not a table of every block before it.
type table[E any] struct {
	dense []E
	pages map[int64]*[metaPageLen]E
}

const (
	denseBlocks = 1 << 14 // 1 GiB of data: 192 KiB of baseMeta
	metaPageLen = 512
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
