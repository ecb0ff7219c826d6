package spool

import (
	"fmt"
	"io"
	"net"
	"os"
)

// sendFile is the zero-copy part of WriteTo: when b is on disk, unencrypted
// and w is a *net.TCPConn (which sends from a file with sendfile(2)) or an
// *os.File (copy_file_range(2)), it hands w a second
// descriptor of the spill file,
// block by block, and the data never passes through user space on its way
// out.
//
// Each block is verified against its checksum first (which reads it once),
// so corruption is still an error, never bytes on the wire. The buffer's
// lock is held for reading while a block is verified, and released before
// the kernel sends it: the send can take as long as the peer likes, and
// no writer, nor Close, waits for it. The price is that a write racing
// with the WriteTo, into the block being sent, may be sent in part, as
// with an *os.File; the bytes sent are always the buffer's own. sendFile stops
// where the zero-copy path does not apply (bytes in memory, a hole, the
// end of what is on disk) and WriteTo goes on with copies from there. It
// returns the bytes sent and an error only if w failed.
func (b *store) sendFile(w io.Writer) (n int64, err error) {
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
	b.mu.RLock()
	bf, _ := b.file.(*blockFile)
	var osf *os.File
	if bf != nil {
		osf, _ = bf.f.(*os.File)
	}
	if b.closed || osf == nil || bf.seal != nil || b.mem.Load() != 0 {
		b.mu.RUnlock()
		return 0, nil
	}
	// A descriptor of our own, with its own offset: the spill file's is
	// shared by concurrent ReadAt calls (which use pread and never move
	// it, but sendfile does).
	dup, derr := os.Open(fmt.Sprintf("/proc/self/fd/%d", osf.Fd()))
	b.mu.RUnlock()
	if derr != nil {
		return 0, nil // no /proc: copy instead
	}
	defer dup.Close()
	for {
		b.mu.RLock()
		if b.closed || b.file != bf || b.mem.Load() != 0 {
			b.mu.RUnlock()
			return n, nil
		}
		pos := b.off
		end := min(b.size, b.fileSize, bf.sendable(pos))
		if pos >= end {
			b.mu.RUnlock()
			return n, nil
		}
		if verr := bf.verifyRange(pos, end); verr != nil {
			b.mu.RUnlock()
			return n, nil // WriteTo's copying path reports it
		}
		b.mu.RUnlock()
		// The kernel sends with no lock held: a peer that stops reading
		// must not stop the buffer's writers, or its Close, which would
		// otherwise wait for the send as long as the peer likes. dup keeps
		// the file alive if the buffer is closed meanwhile.
		var sent int64
		if _, serr := dup.Seek(pos, io.SeekStart); serr == nil {
			sent, err = rf.ReadFrom(&io.LimitedReader{R: dup, N: end - pos})
		}
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
