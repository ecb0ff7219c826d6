package spool

import (
	"fmt"
	"io"
	"net"
	"os"
)

// sendFile is the zero-copy part of WriteTo: when b is on disk,
// unencrypted, and w is a *net.TCPConn (which sends from a file with
// sendfile(2)) or an *os.File (copy_file_range(2)), it hands w the blocks
// straight from their extents in the arena's segment file, through a
// descriptor of its own, and the data never passes through user space on
// its way out.
//
// Each block is verified against its checksum first (which reads it once,
// into the WriteTo's stage, budget memory), so corruption is still an
// error, never bytes on the wire. The buffer's lock is held for reading
// while a block is verified, and released before the kernel sends it: the
// send can take as long as the peer likes, and no writer, nor Close, waits
// for it. The block's extent is pinned meanwhile (segment.pin), and
// tainted for good: if the buffer frees it (a write, a Truncate, a Close),
// the arena does not reuse it until the send is over, and not even then
// until its whole frame is punched out of the file, since the kernel may
// keep the pages it sent (a socket does, until the peer acknowledges
// them) and send them again after the call returns. So the bytes sent are
// always the buffer's own, at worst those it held just before a racing
// write, as with an *os.File, and never another buffer's. sendFile stops where the zero-copy path does not apply (bytes
// in memory, a hole, the end of what is on disk, a stage smaller than a
// block) and WriteTo goes on with copies from there. It returns the bytes
// sent and an error only if w failed.
func (b *store) sendFile(w io.Writer, st *stage) (n int64, err error) {
	// Only the standard library's own ReadFrom methods, which call no user
	// code: the lock protocol (lock.go) forbids user code under a lock.
	var rf io.ReaderFrom
	switch w := w.(type) {
	case *net.TCPConn:
		rf = w
	case *os.File:
		rf = w
	default:
		return 0, nil
	}
	if int64(len(*st.buf)) < b.m.cs || b.m.arena.noZeroCopy.Load() {
		return 0, nil // no room to verify a block, or no way to recycle what is sent
	}
	b.mu.RLock()
	sp := b.file
	var fd interface{ Fd() uintptr }
	if sp != nil {
		fd, _ = sp.seg.f.(interface{ Fd() uintptr })
	}
	if b.closed || fd == nil || sp.seal != nil || b.mem.Load() != 0 {
		b.mu.RUnlock()
		return 0, nil
	}
	seg := sp.seg
	// A descriptor of our own, with its own offset: the segment's is
	// shared by every buffer's reads and writes (pread and pwrite, which
	// never move it; sendfile does), and it outlives a Manager.Close
	// that closes the segment while the kernel sends.
	dup, derr := os.Open(fmt.Sprintf("/proc/self/fd/%d", fd.Fd()))
	b.mu.RUnlock()
	if derr != nil {
		return 0, nil // no /proc: copy instead
	}
	defer dup.Close()
	cs := b.m.cs
	for {
		b.mu.RLock()
		if b.closed || b.file != sp || b.mem.Load() != 0 {
			b.mu.RUnlock()
			return n, nil
		}
		pos := b.off
		i := pos / cs
		m := sp.meta.get(i)
		end := min(b.size, b.fileSize, i*cs+int64(m.valid))
		if pos >= end || m.ext == 0 {
			b.mu.RUnlock()
			return n, nil
		}
		if verr := sp.readVerified(i, m, (*st.buf)[:m.n]); verr != nil {
			b.mu.RUnlock()
			return n, nil // WriteTo's copying path reports it
		}
		seg.pin(m.ext.offset())
		b.mu.RUnlock()
		// The kernel sends with no lock held: a peer that stops reading
		// must not stop the buffer's writers, or its Close, which would
		// otherwise wait for the send as long as the peer likes.
		var sent int64
		if _, serr := dup.Seek(m.ext.offset()+pos-i*cs, io.SeekStart); serr == nil {
			sent, err = rf.ReadFrom(&io.LimitedReader{R: dup, N: end - pos})
		}
		b.m.arena.unpin(seg, m.ext)
		if sent > 0 {
			b.lock()
			if b.off == pos {
				b.off = pos + sent
			}
			b.unlock()
			n += sent
			b.m.zeroCopyBytes.Add(sent)
			b.m.countRead(int(sent), int(sent))
		}
		if err != nil {
			return n, err
		}
		if sent < end-pos {
			return n, nil
		}
	}
}
