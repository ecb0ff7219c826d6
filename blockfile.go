package spool

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"sync/atomic"
)

// blockSize is the unit of integrity of spilled data: every blockSize bytes
// of a spill file carry their own checksum, or their own authentication tag
// when spilled data is encrypted.
const blockSize = 64 << 10

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// blockFile keeps a buffer's spilled bytes in a spill file, at their own
// offsets (so holes stay holes), and checks them on the way back.
//
// The metadata of each block (its length, its CRC-32C, or its nonce and
// GCM tag) stays in memory, never on disk: a file system that loses a
// write, returns stale or zeroed pages after an error, or flips a bit
// cannot produce a block that verifies. A read of a block that does not
// verify returns ErrCorrupt, never the bytes. With a sealer, blocks are
// encrypted with AES-GCM under a key that exists only in memory, with a
// fresh nonce for every write of a block, so a spill file left on disk
// (after a crash, or read through /proc) is unreadable.
//
// blockFile implements spillFile for Buffer, with the semantics Buffer
// expects: bytes never written read as zeros. It is not safe for
// concurrent use except for concurrent ReadAt calls, which the Buffer's
// lock provides.
type blockFile struct {
	f    spillFile
	seal *sealer     // nil: checksums only
	disk *diskBudget // charged with held
	meta blockTable
	end  int64 // extent of the data written to f
	// held is the sum of the blocks' n: the bytes the file holds, holes
	// between blocks excluded. Each block's growth is charged to disk
	// before it is written; Truncate and Close give back what they drop.
	held int64
}

func newBlockFile(f spillFile, s *sealer, disk *diskBudget) *blockFile {
	bf := &blockFile{f: f, seal: s, disk: disk}
	if s != nil {
		bf.meta.seals = new(table[sealMeta])
	}
	return bf
}

// blockPool holds scratch blocks with room for a GCM tag, and after that
// sideSize bytes for the nonce and additional data of a seal or an open
// (sideOf), so that neither allocates: slices passed to cipher.AEAD, an
// interface, escape to the heap.
var blockPool = sync.Pool{New: func() any { b := make([]byte, blockSize+16+sideSize); return &b }}

const sideSize = 24

// sideOf returns the side area of a scratch block from blockPool.
func sideOf(b *[]byte) *[sideSize]byte { return (*[sideSize]byte)((*b)[blockSize+16:]) }

func getBlock() *[]byte  { return blockPool.Get().(*[]byte) }
func putBlock(b *[]byte) { blockPool.Put(b) }

// WriteAt writes p at off, block by block. It returns the number of bytes
// written; a block whose write failed is not counted and keeps its former
// content (restored on disk if the failed write may have touched it).
func (bf *blockFile) WriteAt(p []byte, off int64) (int, error) {
	return eachBlock(p, off, bf.writeBlock)
}

// eachBlock splits [off, off+len(p)) at block boundaries and calls f with
// each block's index, the offset in it and the part of p for it, until f
// fails. It returns the bytes of the blocks f handled.
func eachBlock(p []byte, off int64, f func(i int64, lo int, seg []byte) error) (int, error) {
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		i := pos / blockSize
		lo := int(pos - i*blockSize)
		seg := p[n:min(len(p), n+blockSize-lo)]
		if err := f(i, lo, seg); err != nil {
			return n, err
		}
		n += len(seg)
	}
	return n, nil
}

func (bf *blockFile) writeBlock(i int64, lo int, seg []byte) error {
	m := bf.meta.get(i)
	if bf.seal != nil {
		return bf.sealBlock(i, m, lo, seg)
	}
	if lo != int(m.n) || m.valid != m.n {
		// The write overlaps bytes of the block, leaves a gap after them,
		// or lands on bytes Truncate cut off: the general path.
		return bf.rewriteBlock(i, m, lo, seg)
	}
	// Appending right after the block's bytes (or starting a new block):
	// the bytes written before stay as they are, and the checksum extends
	// over the new ones.
	if err := bf.grow(len(seg)); err != nil {
		return err
	}
	if err := bf.pwrite(seg, i*blockSize+int64(lo)); err != nil {
		bf.shrink(int64(len(seg)))
		return err
	}
	hi := uint32(lo + len(seg))
	m.crc = crc32.Update(m.crc, castagnoli, seg)
	m.n, m.valid = hi, hi
	bf.meta.set(i, m)
	return nil
}

// rewriteBlock writes seg at lo in block i, which holds data that the
// write overlaps or leaves a gap after: it reads and verifies the block,
// merges, and writes back the whole span that changed.
func (bf *blockFile) rewriteBlock(i int64, m blockMeta, lo int, seg []byte) error {
	base := i * blockSize
	oldp := getBlock()
	defer putBlock(oldp)
	old := (*oldp)[:m.n]
	if err := bf.readVerified(i, m, old); err != nil {
		return err
	}
	newp := getBlock()
	defer putBlock(newp)
	hi := lo + len(seg)
	newN := max(int(m.valid), hi)
	if err := bf.grow(newN - int(m.n)); err != nil {
		return err
	}
	buf := (*newp)[:newN]
	copy(buf, old[:m.valid])
	clear(buf[m.valid:]) // bytes past valid, and any gap, are zeros
	copy(buf[lo:], seg)
	// Write from the first byte that differs on disk: from lo, or from
	// valid if bytes past valid must be cleared.
	from := min(lo, int(m.valid))
	if err := bf.pwrite(buf[from:], base+int64(from)); err != nil {
		bf.restore(old, from, base)
		bf.shrink(int64(newN) - int64(m.n))
		return err
	}
	bf.shrink(int64(m.n) - int64(newN)) // bytes Truncate had cut off
	m.n, m.valid = uint32(newN), uint32(newN)
	m.crc = crc32.Checksum(buf, castagnoli)
	bf.meta.set(i, m)
	return nil
}

// sealBlock writes seg at lo in block i of an encrypted file: the block's
// plaintext is rebuilt, sealed under a fresh nonce, and written whole.
func (bf *blockFile) sealBlock(i int64, m blockMeta, lo int, seg []byte) error {
	base := i * blockSize
	hi := lo + len(seg)
	ptp := getBlock()
	defer putBlock(ptp)
	oldp := getBlock()
	defer putBlock(oldp)
	old := (*oldp)[:m.n] // the old ciphertext, to restore on failure
	newN := max(int(m.valid), hi)
	pt := (*ptp)[:newN]
	if m.n > 0 {
		if err := bf.readRaw(i, old); err != nil {
			return err
		}
		if lo > 0 || hi < int(m.valid) {
			if err := bf.seal.open(pt[:0], i, m, old, sideOf(oldp)); err != nil {
				return err
			}
		}
	}
	clear(pt[m.valid:])
	copy(pt[lo:], seg)
	if err := bf.grow(newN - int(m.n)); err != nil {
		return err
	}
	ctp := getBlock()
	defer putBlock(ctp)
	ctr, ct, tag := bf.seal.seal((*ctp)[:0], i, pt, sideOf(ctp))
	if err := bf.pwrite(ct, base); err != nil {
		bf.restore(old, 0, base)
		bf.shrink(int64(newN) - int64(m.n))
		return err
	}
	bf.shrink(int64(m.n) - int64(newN)) // bytes Truncate had cut off
	m.n, m.valid, m.ctr, m.tag = uint32(newN), uint32(newN), ctr, tag
	bf.meta.set(i, m)
	return nil
}

// grow charges the disk budget with n more bytes held, if n > 0.
func (bf *blockFile) grow(n int) error {
	if n <= 0 {
		return nil
	}
	if err := bf.disk.reserve(int64(n)); err != nil {
		return err
	}
	bf.held += int64(n)
	return nil
}

// shrink gives back n bytes held, if n > 0.
func (bf *blockFile) shrink(n int64) {
	if n > 0 {
		bf.held -= n
		bf.disk.release(n)
	}
}

// restore writes back old[from:] after a failed write, so that a transient
// error does not leave the block unreadable. If it fails too, the block no
// longer verifies, and reads of it return ErrCorrupt.
func (bf *blockFile) restore(old []byte, from int, base int64) {
	if from < len(old) {
		_, _ = bf.f.WriteAt(old[from:], base+int64(from))
	}
}

func (bf *blockFile) pwrite(p []byte, off int64) error {
	w, err := bf.f.WriteAt(p, off)
	if w > 0 {
		bf.end = max(bf.end, off+int64(w))
	}
	return err
}

// ReadAt reads len(p) bytes at off. Bytes never written read as zeros; a
// block that does not verify makes it return ErrCorrupt.
func (bf *blockFile) ReadAt(p []byte, off int64) (int, error) {
	return eachBlock(p, off, bf.readBlock)
}

func (bf *blockFile) readBlock(i int64, lo int, seg []byte) error {
	m := bf.meta.get(i)
	hi := lo + len(seg)
	valid := int(m.valid)
	if lo >= valid {
		clear(seg)
		return nil
	}
	if lo == 0 && hi >= int(m.n) {
		// The whole block is wanted: read and verify (or decrypt) it
		// straight into seg.
		if err := bf.readVerified(i, m, seg[:m.n]); err != nil {
			return err
		}
		clear(seg[valid:])
		return nil
	}
	bp := getBlock()
	defer putBlock(bp)
	buf := (*bp)[:m.n]
	if err := bf.readVerified(i, m, buf); err != nil {
		return err
	}
	c := copy(seg, buf[lo:valid])
	clear(seg[c:])
	return nil
}

// readVerified reads the m.n bytes of block i into p (len(p) == m.n) and
// checks them: it returns ErrCorrupt if they are not what was written.
// With a sealer, p receives the plaintext.
func (bf *blockFile) readVerified(i int64, m blockMeta, p []byte) error {
	if m.n == 0 {
		return nil
	}
	if bf.seal != nil {
		ctp := getBlock()
		defer putBlock(ctp)
		ct := (*ctp)[:m.n]
		if err := bf.readRaw(i, ct); err != nil {
			return err
		}
		return bf.seal.open(p[:0], i, m, ct, sideOf(ctp))
	}
	if err := bf.readRaw(i, p); err != nil {
		return err
	}
	if crc32.Checksum(p, castagnoli) != m.crc {
		return fmt.Errorf("%w: checksum mismatch in block at offset %d", ErrCorrupt, i*blockSize)
	}
	return nil
}

// readRaw reads the bytes of block i as they are on disk. A file shorter
// than what was written is corruption too.
func (bf *blockFile) readRaw(i int64, p []byte) error {
	r, err := bf.f.ReadAt(p, i*blockSize)
	if err != nil && !(errors.Is(err, io.EOF) && r == len(p)) {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: block at offset %d is short (%d of %d bytes)", ErrCorrupt, i*blockSize, r, len(p))
		}
		return err
	}
	return nil
}

// Truncate shortens or lengthens the data to size. Blocks past the new end
// are forgotten and cut off the file; the block holding the new end keeps
// its sealed bytes and only its valid length shrinks.
func (bf *blockFile) Truncate(size int64) error {
	keep := size / blockSize
	rem := size % blockSize
	cut := keep * blockSize
	if rem != 0 {
		cut += blockSize // keep the block that holds the end, whole
	}
	if cut < bf.end {
		if err := bf.f.Truncate(cut); err != nil {
			return err
		}
		bf.end = cut
	}
	if rem != 0 {
		if m := bf.meta.get(keep); int64(m.valid) > rem {
			m.valid = uint32(rem)
			bf.meta.set(keep, m)
		}
		keep++
	}
	bf.shrink(bf.meta.dropFrom(keep))
	return nil
}

// Close closes the file and gives back the bytes it held.
func (bf *blockFile) Close() error {
	bf.shrink(bf.held)
	return bf.f.Close()
}

// sendable returns the end of the run, starting at off, whose bytes are on
// disk as they read: off's block up to its valid length. Past it lie zeros
// that are not in the file (a hole, or bytes Truncate cut off).
func (bf *blockFile) sendable(off int64) int64 {
	i := off / blockSize
	return i*blockSize + int64(bf.meta.get(i).valid)
}

// verifyRange checks the blocks holding [off, end) against their
// checksums, reading each once.
func (bf *blockFile) verifyRange(off, end int64) error {
	bp := getBlock()
	defer putBlock(bp)
	for i := off / blockSize; i*blockSize < end; i++ {
		m := bf.meta.get(i)
		if err := bf.readVerified(i, m, (*bp)[:m.n]); err != nil {
			return err
		}
	}
	return nil
}

// sealer encrypts spilled blocks with AES-256-GCM under a key made for one
// Manager from crypto/rand and kept only in memory. Nonces are a random
// 4-byte prefix and a 64-bit counter, so no nonce repeats under a key. The
// additional data binds each sealed block to its index and length, so
// blocks cannot be moved or cut. It is safe for concurrent use.
type sealer struct {
	aead   cipher.AEAD
	prefix [4]byte
	ctr    atomic.Uint64
}

func newSealer() (*sealer, error) {
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	s := &sealer{aead: aead}
	if _, err := rand.Read(s.prefix[:]); err != nil {
		return nil, err
	}
	return s, nil
}

// nonce writes the nonce of counter ctr into side and returns it.
func (s *sealer) nonce(ctr uint64, side *[sideSize]byte) []byte {
	n := side[:12]
	copy(n[:4], s.prefix[:])
	binary.LittleEndian.PutUint64(n[4:], ctr)
	return n
}

// additional writes the additional data of block i holding n bytes into
// side and returns it: a block cannot be passed off as another, or as a
// longer or shorter one.
func additional(i int64, n int, side *[sideSize]byte) []byte {
	ad := side[12:24]
	binary.LittleEndian.PutUint64(ad[:8], uint64(i))
	binary.LittleEndian.PutUint32(ad[8:], uint32(n))
	return ad
}

// seal encrypts pt as block i into dst (which needs room for len(pt)+16
// bytes) and returns the nonce counter, the ciphertext and the tag. side
// is scratch space outside dst's output and pt.
func (s *sealer) seal(dst []byte, i int64, pt []byte, side *[sideSize]byte) (uint64, []byte, [16]byte) {
	ctr := s.ctr.Add(1)
	out := s.aead.Seal(dst, s.nonce(ctr, side), pt, additional(i, len(pt), side))
	var tag [16]byte
	copy(tag[:], out[len(pt):])
	return ctr, out[:len(pt)], tag
}

// open decrypts ct, block i as described by m, into dst and checks its
// tag. ct must have 16 bytes of spare capacity for the tag; side is
// scratch space outside ct, its tag and dst.
func (s *sealer) open(dst []byte, i int64, m blockMeta, ct []byte, side *[sideSize]byte) error {
	in := append(ct[:len(ct):len(ct)+16], m.tag[:]...)
	if _, err := s.aead.Open(dst, s.nonce(m.ctr, side), in, additional(i, len(ct), side)); err != nil {
		return fmt.Errorf("%w: authentication failed for block at offset %d", ErrCorrupt, i*blockSize)
	}
	return nil
}
