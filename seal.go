package spool

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync/atomic"
)

// sealer encrypts spilled blocks with AES-256-GCM under a key made for one
// Manager from crypto/rand and kept only in memory. Nonces are a random
// 4-byte prefix and a 64-bit counter shared by every block the Manager
// seals, so no nonce repeats under the key, in any segment of the arena.
// The additional data binds each sealed block to its buffer, its index and
// its length, so that a block cannot be passed off as another buffer's, as
// another block of its own buffer, or as a longer or shorter one. It is
// safe for concurrent use.
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

// sideSize is the room a seal or an open needs for its nonce and
// additional data, in a scratch block after the data and its tag: slices
// passed to cipher.AEAD, an interface, escape to the heap, so they come
// from the scratch block rather than the stack.
const sideSize = 32

// nonce writes the nonce of counter ctr into side and returns it.
func (s *sealer) nonce(ctr uint64, side *[sideSize]byte) []byte {
	n := side[:12]
	copy(n[:4], s.prefix[:])
	binary.LittleEndian.PutUint64(n[4:], ctr)
	return n
}

// additional writes the additional data of block i of buffer id, holding
// n bytes, into side and returns it.
func additional(id uint64, i int64, n int, side *[sideSize]byte) []byte {
	ad := side[12:32]
	binary.LittleEndian.PutUint64(ad[:8], id)
	binary.LittleEndian.PutUint64(ad[8:16], uint64(i))
	binary.LittleEndian.PutUint32(ad[16:], uint32(n))
	return ad
}

// seal encrypts pt as block i of buffer id into dst (which needs room for
// len(pt)+16 bytes) and returns the nonce counter, the ciphertext and the
// tag. side is scratch space outside dst's output and pt.
func (s *sealer) seal(dst []byte, id uint64, i int64, pt []byte, side *[sideSize]byte) (uint64, []byte, [16]byte) {
	ctr := s.ctr.Add(1)
	out := s.aead.Seal(dst, s.nonce(ctr, side), pt, additional(id, i, len(pt), side))
	var tag [16]byte
	copy(tag[:], out[len(pt):])
	return ctr, out[:len(pt)], tag
}

// open decrypts ct, block i of buffer id sealed with counter ctr and tag,
// into dst and checks its tag. ct must have 16 bytes of spare capacity for
// the tag; side is scratch space outside ct, its tag and dst.
func (s *sealer) open(dst []byte, id uint64, i int64, ctr uint64, tag [16]byte, ct []byte, side *[sideSize]byte) error {
	in := append(ct[:len(ct):len(ct)+16], tag[:]...)
	if _, err := s.aead.Open(dst, s.nonce(ctr, side), in, additional(id, i, len(ct), side)); err != nil {
		return fmt.Errorf("%w: authentication failed for block %d", ErrCorrupt, i)
	}
	return nil
}
