package spool

import (
	"fmt"
	"sync/atomic"

	"github.com/minio/crc64nvme"
)

// A spill holds the blocks of one buffer that are on disk, each in an
// extent of its Manager's arena (arena.go), and checks them on the way
// back. Block i holds bytes [i·cs, (i+1)·cs) of the buffer: the same
// range as its slot i in memory, so a rollover writes each slot as one
// block and a promotion reads each block into one slot.
//
// The metadata of each block (its extent, length, and CRC-64 checksum, or
// its nonce and GCM tag) stays in memory, never on disk: a file system
// that loses a write, returns stale or zeroed pages after an error, flips
// a bit, or hands back the bytes another buffer left in a reused extent
// cannot produce a block that verifies. A read of a block that does not
// verify returns ErrCorrupt, never the bytes.
//
// A block's bytes are never overwritten in place. A write takes a new
// extent, writes the block's whole new content there, and only then frees
// the old one; a write that appends to a block whose extent has room
// writes the new bytes after the old ones and extends the checksum over
// them (CRC-64 extends without the bytes before). Either way, a write that
// fails leaves the block as it was, readable, with no repair to make.
//
// spill implements spillFile for the store, with the semantics it
// expects: bytes never written read as zeros. It is not safe for
// concurrent use except for concurrent ReadAt calls, which the buffer's
// lock provides.
type spill struct {
	a    *arena
	seg  *segment // where its blocks go
	id   uint64   // the buffer's ID, bound into sealed blocks
	seal *sealer  // nil: checksums only
	meta blockTable
	// credit, if not nil, is the disk budget a wait granted the buffer
	// (store.credit), spent before the budget is charged.
	credit *int64
	// live is the bytes of data the spill holds; holds, if not nil, is
	// set while it holds any (store.holdsDisk).
	live  int64
	holds *atomic.Bool
}

// addLive adds d to the bytes of data the spill holds, and the arena's,
// and counts the spill among the holders of disk (diskBudget.holders)
// while it holds any: waiters for disk budget check for a deadlock by
// that count, each time it changes (see recheck below). The caller holds
// the buffer's lock, and no segment lock.
func (sp *spill) addLive(d int64) {
	if d == 0 {
		return
	}
	was := sp.live > 0
	sp.live += d
	sp.a.live.Add(d)
	// The count is raised before the flag is set, and lowered after it is
	// cleared: a look for a deadlock in between (diskBudget.serve) sees at
	// least as many holders as flagged waiters, and refuses nobody for
	// want of a holder that is not waiting.
	switch now := sp.live > 0; {
	case now && !was:
		sp.a.disk.holders.Add(1)
		sp.setHolds(true)
		// If it waits (an eviction moved a waiting buffer's memory to
		// disk), the waiters may be deadlocked now. A spill that lets go
		// has them look again once the space it freed is given back
		// (drop).
		sp.a.disk.recheck()
	case !now && was:
		sp.setHolds(false)
		sp.a.disk.holders.Add(-1)
	}
}

// setHolds sets the buffer's flag of holding data on disk, if it has one.
func (sp *spill) setHolds(v bool) {
	if sp.holds != nil {
		sp.holds.Store(v)
	}
}

func (a *arena) newSpill(id uint64, seal *sealer) (*spill, error) {
	seg, err := a.pick()
	if err != nil {
		return nil, err
	}
	sp := &spill{a: a, seg: seg, id: id, seal: seal}
	sp.meta.seg = seg.idx
	if seal != nil {
		sp.meta.seals = new(table[sealMeta])
	}
	return sp, nil
}

// eachBlock splits [off, off+len(p)) at block boundaries and calls f with
// each block's index, the offset in it and the part of p for it, until f
// fails. It returns the bytes of the blocks f handled.
func (sp *spill) eachBlock(p []byte, off int64, f func(i int64, lo int, seg []byte) error) (int, error) {
	cs := sp.a.cs
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		i := pos / cs
		lo := int(pos - i*cs)
		seg := p[n:min(len(p), n+int(cs)-lo)]
		if err := f(i, lo, seg); err != nil {
			return n, err
		}
		n += len(seg)
	}
	return n, nil
}

// WriteAt writes p at off, block by block. It returns the number of bytes
// written; a block whose write failed keeps its former content. A block
// that a write leaves short of a chunk gets an extent with room for as
// much again: writes to a spilled buffer usually append.
func (sp *spill) WriteAt(p []byte, off int64) (n int, err error) {
	if len(p) == 0 {
		return 0, nil
	}
	cs := sp.a.cs
	i := off / cs
	if lo := int(off - i*cs); lo+len(p) <= int(cs) {
		// Within one block, the usual write (a slow upload's pieces):
		// straight to writePart, past eachBlock's closure, whose frame
		// would lie under every write to the file (goroutine stacks:
		// doc.go).
		var freed bool
		freed, err = sp.writePart(i, lo, p, true)
		if err == nil {
			n = len(p)
		}
		if freed {
			sp.a.settle(sp.seg)
		}
		return n, err
	}
	n, err = sp.eachBlock(p, off, sp.writeGrowing)
	sp.a.settle(sp.seg)
	return n, err
}

// writeSlot makes p the whole content of the block at off (a multiple of
// the chunk size), in an extent that fits it: a rollover writes each slot
// of a buffer as one block, complete.
func (sp *spill) writeSlot(p []byte, off int64) error {
	if len(p) == 0 {
		return nil
	}
	freed, err := sp.writePart(off/sp.a.cs, 0, p, false) // a slot is one block
	if freed {
		sp.a.settle(sp.seg)
	}
	return err
}

func (sp *spill) writeGrowing(i int64, lo int, seg []byte) error {
	_, err := sp.writePart(i, lo, seg, true)
	return err
}

// writePart writes seg at lo in block i: after the block's bytes if it
// appends and the extent has room; straight from seg when it covers
// everything the block holds; or else merged with the block's bytes. With
// grow, a block short of a chunk gets an extent with room for twice its
// bytes, so that one that grows by appends moves O(log) times, not once
// per append; or, while the buffer has room set aside (credit, from
// Buffer.ReserveDisk), a whole chunk at once: it never moves, so what the
// buffer spends stays within whole blocks, as its reservation counted,
// rather than leaving the extents it grew out of to the shared budget.
//
// It reports whether it freed the block's former extent, having written
// a new one: the caller then settles the arena (arena.settle), at the
// write's entry point rather than here, since settling may punch the
// file, a deep call. Every write to the file passes through here: the
// block's metadata goes to the calls below by pointer, and the merge has
// a function of its own, so that this frame stays small (goroutine
// stacks: doc.go).
func (sp *spill) writePart(i int64, lo int, seg []byte, grow bool) (freed bool, err error) {
	m := sp.meta.get(i)
	hi := lo + len(seg)
	appending := m.n > 0 && lo == int(m.n) && m.valid == m.n && sp.seal == nil
	switch {
	case appending && int64(hi) <= sp.a.size(m.ext):
		return false, sp.appendBlock(i, &m, seg)
	case lo == 0 && hi >= int(m.valid):
		err = sp.writeBlock(i, m.ext, m.n, seg, sp.room(len(seg), grow))
	case appending && sp.a.canMove(sp.seg):
		err = sp.moveAppend(i, &m, seg, sp.room(hi, grow))
	default:
		err = sp.mergeBlock(i, &m, lo, seg, grow)
	}
	// A write that fails leaves the block, and its extent, as they were.
	return err == nil && m.ext != 0, err
}

// room returns the bytes of extent that writePart gives a block of n bytes.
func (sp *spill) room(n int, grow bool) int {
	switch {
	case !grow:
		return n
	case sp.credit != nil && *sp.credit > 0:
		return int(sp.a.cs)
	}
	return min(int(sp.a.cs), 2*n)
}

// mergeBlock writes seg at lo in block i, whose metadata is *m, through a
// scratch block that holds the block's bytes read and checked, with seg
// copied over them.
func (sp *spill) mergeBlock(i int64, m *blockMeta, lo int, seg []byte, grow bool) error {
	hi := lo + len(seg)
	bp := sp.a.getScratch()
	defer sp.a.putScratch(bp)
	n := max(int(m.valid), hi)
	buf := (*bp)[:n]
	if err := sp.readVerified(i, *m, buf[:m.n]); err != nil {
		return err
	}
	clear(buf[m.valid:]) // bytes past valid, and any gap, are zeros
	copy(buf[lo:], seg)
	return sp.writeBlock(i, m.ext, m.n, buf, sp.room(n, grow))
}

// appendBlock writes seg after the m.n bytes of block i, in the room its
// extent has left, and extends the checksum over it.
func (sp *spill) appendBlock(i int64, m *blockMeta, seg []byte) error {
	if err := sp.a.writeAt(m.ext, int64(m.n), seg); err != nil {
		return err
	}
	m.sum = crc64nvme.Update(m.sum, seg)
	m.n += uint32(len(seg))
	m.valid = m.n
	sp.addLive(int64(len(seg)))
	sp.meta.set(i, *m)
	return nil
}

// moveAppend appends seg to block i, whose metadata is m, when its extent
// has no room left for it: in a new extent of room bytes, to which the
// kernel copies the block's bytes (arena.copyExtent), without passing them
// through a scratch block. The block's checksum, of the bytes as they were
// written, is extended over seg: bytes that the old extent no longer
// held as written (a lost write, a flipped bit) are carried over as they
// are, and fail the check when the block is read, as they would have in
// the old extent. If the segment file turns out not to copy in the kernel,
// the bytes are read, checked and written through a scratch block into
// the extent already allocated (so that room a reservation set aside is
// not spent twice). The caller calls it only where the arena may move in
// the kernel (arena.canMove); it returns the write's error.
func (sp *spill) moveAppend(i int64, m *blockMeta, seg []byte, room int) error {
	a := sp.a
	ext, err := a.alloc(sp.seg, a.classOf(int64(room)), sp.credit)
	if err != nil {
		return err
	}
	moved, err := a.copyExtent(m.ext, ext, int64(m.n))
	if err == nil && !moved {
		err = sp.copyThrough(i, *m, ext)
	}
	if err == nil {
		err = a.writeAt(ext, int64(m.n), seg)
	}
	if err != nil {
		a.discard(ext)
		return err
	}
	next := blockMeta{ext: ext, n: m.n + uint32(len(seg)), sum: crc64nvme.Update(m.sum, seg)}
	next.valid = next.n
	a.free(m.ext) // the write's entry point settles (writePart)
	sp.addLive(int64(len(seg)))
	sp.meta.set(i, next)
	return nil
}

// copyThrough copies the m.n bytes of block i to the start of extent ext
// through a scratch block, checking them on the way.
func (sp *spill) copyThrough(i int64, m blockMeta, ext extent) error {
	bp := sp.a.getScratch()
	defer sp.a.putScratch(bp)
	buf := (*bp)[:m.n]
	if err := sp.readVerified(i, m, buf); err != nil {
		return err
	}
	return sp.a.writeAt(ext, 0, buf)
}

// writeBlock makes p, at most a chunk, the whole content of block i, whose
// extent was oldExt (0 if none) holding oldN bytes: in a new extent of room
// bytes at least, checksummed or sealed, freeing the old one once the new
// one is written. It takes the old metadata's two fields, not the whole
// blockMeta, which would be passed on the stack (goroutine stacks: doc.go).
func (sp *spill) writeBlock(i int64, oldExt extent, oldN uint32, p []byte, room int) error {
	a := sp.a
	ext, err := a.alloc(sp.seg, a.classOf(int64(room)), sp.credit)
	if err != nil {
		return err
	}
	next := blockMeta{ext: ext, n: uint32(len(p)), valid: uint32(len(p))}
	if sp.seal != nil {
		err = sp.writeSealed(i, &next, p)
	} else {
		next.sum = crc64nvme.Checksum(p)
		err = a.writeAt(ext, 0, p)
	}
	if err != nil {
		a.discard(ext)
		return err
	}
	if oldExt != 0 {
		a.free(oldExt) // the write's entry point settles (writePart)
	}
	sp.addLive(int64(len(p)) - int64(oldN))
	sp.meta.set(i, next)
	return nil
}

// writeSealed encrypts p, the whole content of block i, through a scratch
// block and writes it to next.ext, setting next's counter and tag. It is
// writeBlock's path under EncryptSpill, apart so that the plain path's
// frame does not carry its scratch and deferred call (goroutine stacks:
// doc.go).
func (sp *spill) writeSealed(i int64, next *blockMeta, p []byte) error {
	a := sp.a
	bp := a.getScratch()
	defer a.putScratch(bp)
	var ct []byte
	next.ctr, ct, next.tag = sp.seal.seal((*bp)[:0], sp.id, i, p, a.sideOf(bp))
	return a.writeAt(next.ext, 0, ct)
}

// ReadAt reads len(p) bytes at off. Bytes never written read as zeros; a
// block that does not verify makes it return ErrCorrupt.
func (sp *spill) ReadAt(p []byte, off int64) (int, error) {
	return sp.eachBlock(p, off, sp.readPart)
}

func (sp *spill) readPart(i int64, lo int, seg []byte) error {
	m := sp.meta.get(i)
	hi := lo + len(seg)
	valid := int(m.valid)
	if lo >= valid {
		clear(seg)
		return nil
	}
	if lo == 0 && hi >= int(m.n) {
		// The whole block is wanted: read and verify (or decrypt) it
		// straight into seg.
		if err := sp.readVerified(i, m, seg[:m.n]); err != nil {
			return err
		}
		clear(seg[valid:])
		return nil
	}
	bp := sp.a.getScratch()
	defer sp.a.putScratch(bp)
	buf := (*bp)[:m.n]
	if err := sp.readVerified(i, m, buf); err != nil {
		return err
	}
	c := copy(seg, buf[lo:valid])
	clear(seg[c:])
	return nil
}

// readVerified reads the m.n bytes of block i into p (len(p) == m.n) and
// checks them: it returns ErrCorrupt if they are not what was written.
// With a sealer, p receives the plaintext.
func (sp *spill) readVerified(i int64, m blockMeta, p []byte) error {
	if m.n == 0 {
		return nil
	}
	a := sp.a
	if sp.seal != nil {
		bp := a.getScratch()
		defer a.putScratch(bp)
		ct := (*bp)[:m.n]
		if err := a.readAt(m.ext, ct); err != nil {
			return err
		}
		return sp.seal.open(p[:0], sp.id, i, m.ctr, m.tag, ct, a.sideOf(bp))
	}
	if err := a.readAt(m.ext, p); err != nil {
		return err
	}
	if crc64nvme.Checksum(p) != m.sum {
		return fmt.Errorf("%w: checksum mismatch in block %d", ErrCorrupt, i)
	}
	return nil
}

// Truncate shortens or lengthens the data to size. Blocks past the new end
// give their extents back; the block holding the new end keeps its extent
// and only its valid length shrinks.
func (sp *spill) Truncate(size int64) error {
	cs := sp.a.cs
	keep := size / cs
	if rem := size % cs; rem != 0 {
		if m := sp.meta.get(keep); int64(m.valid) > rem {
			m.valid = uint32(rem)
			sp.meta.set(keep, m)
		}
		keep++
	}
	sp.drop(keep)
	return nil
}

// release frees extent e, which held n bytes of a block the spill no
// longer holds.
func (sp *spill) release(e extent, n uint32) {
	sp.addLive(-int64(n))
	sp.a.free(e)
}

// close gives back every extent the spill holds.
func (sp *spill) close() { sp.drop(0) }

// drop gives back the extents of blocks k on, and then has the waiters
// for disk budget look again: if the spill let go of its last block
// without freeing a granule, they may be deadlocked now.
func (sp *spill) drop(k int64) {
	sp.meta.dropFrom(k, sp.release)
	sp.a.settle(sp.seg)
	sp.a.disk.recheck()
}
