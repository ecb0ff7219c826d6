package spool_test

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

	"github.com/spoolkit/spool"
)

// blk is the chunk size of spilled's Managers: the block size of their
// spilled data, each block checksummed (or sealed) on its own.
const blk = 4096

// spilled returns a buffer holding data, rolled over to disk, in a Manager
// with the given encryption setting.
func spilled(t *testing.T, encrypt bool, data []byte) (*spool.Manager, *spool.Buffer) {
	t.Helper()
	m, err := spool.NewManager(spool.Options{ChunkSize: blk, MemoryBudget: 64 << 10, TempDir: t.TempDir(), EncryptSpill: encrypt})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	b := spillInto(t, m, data)
	wantContent(t, b, data)
	return m, b
}

// spillInto returns a new buffer of m holding data, rolled over to disk.
func spillInto(t *testing.T, m *spool.Manager, data []byte) *spool.Buffer {
	t.Helper()
	b, err := m.NewBuffer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := b.Rollover(); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBitFlipDetected flips every 997th bit of a spill file, one at a
// time: each read of the block holding it fails with ErrCorrupt, the other
// blocks read back intact, and flipping the bit back makes the block good
// again. With encryption the same holds (GCM authentication).
func TestBitFlipDetected(t *testing.T) {
	for _, encrypt := range []bool{false, true} {
		data := randBytes(11, 3*blk+1000)
		_, b := spilled(t, encrypt, data)
		raw := spool.RawSpillFile(b)
		flips := 0
		step := int64(sized(9973, 4999, 997)) // primes: the flips fall on every bit position
		for bit := int64(0); bit < int64(len(data))*8; bit += step {
			off := bit / 8
			flip(t, raw, off, byte(1)<<(bit%8))
			bi := off / blk // the flipped block
			p := make([]byte, len(data))
			n, err := b.ReadAt(p, 0)
			if !errors.Is(err, spool.ErrCorrupt) {
				t.Fatalf("encrypt=%v: ReadAt after flipping bit %d = %d, %v; want ErrCorrupt", encrypt, bit, n, err)
			}
			if int64(n) > bi*blk || !bytes.Equal(p[:n], data[:n]) {
				t.Fatalf("encrypt=%v: ReadAt returned %d bytes past the corrupt block at %d, or wrong bytes", encrypt, n, bi*blk)
			}
			// Other blocks still read.
			for ob := int64(0); ob*blk < int64(len(data)); ob++ {
				if ob == bi {
					continue
				}
				q := make([]byte, min(blk, int64(len(data))-ob*blk))
				if _, err := b.ReadAt(q, ob*blk); err != nil || !bytes.Equal(q, data[ob*blk:][:len(q)]) {
					t.Fatalf("encrypt=%v: block %d unreadable after a flip in block %d: %v", encrypt, ob, bi, err)
				}
			}
			// A small read inside the block fails too.
			if _, err := b.ReadAt(p[:1], off); !errors.Is(err, spool.ErrCorrupt) {
				t.Fatalf("encrypt=%v: 1-byte ReadAt of the flipped byte = %v, want ErrCorrupt", encrypt, err)
			}
			flip(t, raw, off, byte(1)<<(bit%8))
			flips++
		}
		wantContent(t, b, data)
		t.Logf("encrypt=%v: %d bit flips, each detected", encrypt, flips)
	}
}

func flip(t *testing.T, raw interface {
	ReadAt([]byte, int64) (int, error)
	WriteAt([]byte, int64) (int, error)
}, off int64, mask byte) {
	t.Helper()
	var c [1]byte
	if _, err := raw.ReadAt(c[:], off); err != nil {
		t.Fatal(err)
	}
	c[0] ^= mask
	if _, err := raw.WriteAt(c[:], off); err != nil {
		t.Fatal(err)
	}
}

// TestLostWriteDetected: a spill file that loses a write (here: old bytes
// put back under a newer write, as a file system may after an error)
// returns ErrCorrupt, not the stale bytes.
func TestLostWriteDetected(t *testing.T) {
	for _, encrypt := range []bool{false, true} {
		old := randBytes(12, 5000)
		_, b := spilled(t, encrypt, old)
		raw := spool.RawSpillFile(b)
		stale := make([]byte, 5000)
		raw.ReadAt(stale, 0)
		if _, err := b.WriteAt(randBytes(13, 5000), 0); err != nil {
			t.Fatal(err)
		}
		raw.WriteAt(stale, 0) // the write is "lost"
		p := make([]byte, 5000)
		if _, err := b.ReadAt(p, 0); !errors.Is(err, spool.ErrCorrupt) {
			t.Errorf("encrypt=%v: ReadAt of a block whose write was lost = %v, want ErrCorrupt", encrypt, err)
		}
	}
}

// TestEncryptedNoPlaintext: with EncryptSpill, no 16-byte run of the data
// appears anywhere in the arena's spill files, through writes, overwrites
// (which leave old extents behind, freed), truncation and random access;
// and everything reads back.
func TestEncryptedNoPlaintext(t *testing.T) {
	text := bytes.Repeat([]byte("the secret text of an upload, "), 6000) // compressible, easy to find
	m, b := spilled(t, true, text)
	// Random access keeps working on the encrypted file.
	want := append([]byte(nil), text...)
	patch := []byte("PATCHED-PLAINTEXT-MARKER")
	for _, off := range []int64{0, 100, blk - 5, 2*blk + 17} {
		if _, err := b.WriteAt(patch, off); err != nil {
			t.Fatal(err)
		}
		copy(want[off:], patch)
	}
	if err := b.Truncate(int64(len(want)) - 777); err != nil {
		t.Fatal(err)
	}
	want = want[:len(want)-777]
	if err := b.Truncate(int64(len(want)) + 5000); err != nil {
		t.Fatal(err)
	}
	want = append(want, make([]byte, 5000)...)
	if _, err := b.WriteAt(patch, int64(len(want))-100); err != nil {
		t.Fatal(err)
	}
	copy(want[len(want)-100:], patch)
	wantContent(t, b, want)

	// Every byte of every segment file of the arena: what the disk holds.
	disk, err := spool.ArenaBytes(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(disk) < len(text)/2 {
		t.Fatalf("the spill files hold only %d bytes", len(disk))
	}
	for i := 0; i+16 <= len(want); i += 8 {
		if bytes.Contains(disk, want[i:i+16]) && !bytes.Equal(want[i:i+16], make([]byte, 16)) {
			t.Fatalf("plaintext %q found in the spill file", want[i:i+16])
		}
	}
	if bytes.Contains(disk, []byte("secret")) || bytes.Contains(disk, []byte("PATCHED")) {
		t.Fatal("plaintext found in the spill file")
	}
	runtime.KeepAlive(b) // else its finalizer may close the file read above
}

// TestPlainSpillIsPlain is the control for TestEncryptedNoPlaintext:
// without EncryptSpill the text is on disk, so the search above can fail.
func TestPlainSpillIsPlain(t *testing.T) {
	text := bytes.Repeat([]byte("the secret text of an upload, "), 100)
	_, b := spilled(t, false, text)
	disk := make([]byte, len(text))
	spool.RawSpillFile(b).ReadAt(disk, 0)
	if !bytes.Contains(disk, []byte("secret")) {
		t.Fatal("unencrypted spill file does not hold the text")
	}
	runtime.KeepAlive(b)
}

// TestSpillFarOffsets: spilled data far out (past the first GiB, where
// checksums live in sparse pages) is checked and truncated like the rest.
func TestSpillFarOffsets(t *testing.T) {
	for _, encrypt := range []bool{false, true} {
		_, b := spilled(t, encrypt, randBytes(90, 100))
		far := int64(3<<30) + 12345
		data := randBytes(91, 2*blk)
		if _, err := b.WriteAt(data, far); err != nil {
			t.Fatal(err)
		}
		p := make([]byte, len(data))
		if _, err := b.ReadAt(p, far); err != nil || !bytes.Equal(p, data) {
			t.Fatalf("encrypt=%v: ReadAt far = %v, equal %v", encrypt, err, bytes.Equal(p, data))
		}
		if err := b.Truncate(far + 10); err != nil {
			t.Fatal(err)
		}
		if err := b.Truncate(far + 1000); err != nil {
			t.Fatal(err)
		}
		q := make([]byte, 1000)
		if _, err := b.ReadAt(q, far); err != nil || !bytes.Equal(q[:10], data[:10]) || !bytes.Equal(q[10:], make([]byte, 990)) {
			t.Fatalf("encrypt=%v: after shrink and regrow: %v", encrypt, err)
		}
		flip(t, spool.RawSpillFile(b), far+3, 4)
		spool.DropWindow(b) // it holds the block as it was checked
		if _, err := b.ReadAt(q, far); !errors.Is(err, spool.ErrCorrupt) {
			t.Fatalf("encrypt=%v: flipped bit far out: %v, want ErrCorrupt", encrypt, err)
		}
	}
}

// TestSpilledBlockIOAllocations checks that rewriting and reading back a
// whole block of a spilled buffer allocates nothing, encrypted or not: the
// nonce and additional data of a seal live in the pooled scratch block.
func TestSpilledBlockIOAllocations(t *testing.T) {
	for _, encrypt := range []bool{false, true} {
		m, err := spool.NewManager(spool.Options{TempDir: t.TempDir(), EncryptSpill: encrypt})
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.NewBuffer()
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Rollover(); err != nil {
			t.Fatal(err)
		}
		p := bytes.Repeat([]byte("spool"), blk/5+1)[:blk]
		q := make([]byte, len(p))
		var ioErr error
		allocs := testing.AllocsPerRun(50, func() {
			if _, err := b.WriteAt(p, blk); err != nil {
				ioErr = err
			}
			if _, err := b.ReadAt(q, blk); err != nil {
				ioErr = err
			}
		})
		if ioErr != nil {
			t.Fatal(ioErr)
		}
		if !bytes.Equal(p, q) {
			t.Fatalf("encrypt %v: read back other bytes", encrypt)
		}
		if allocs != 0 && !raceEnabled {
			t.Errorf("encrypt %v: %v allocations per block written and read back, want 0", encrypt, allocs)
		}
		b.Close()
		m.Close()
	}
}
