package spool

import (
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
)

// Copying a buffer out: WriteTo, and a Reader's WriteTo.
//
// A copy out reads the buffer from a cursor: the buffer's shared offset
// (Buffer.WriteTo, guarded by the buffer's lock) or a Reader's offset of
// its own (the Reader's alone). It moves data through a stage (stage.go),
// locking the buffer only while each piece is copied out, never while
// w.Write runs. Where the bytes are on disk, unencrypted, and w is a sink
// whose ReadFrom is the standard library's own sendfile or
// copy_file_range (zeroCopySink), it hands w the blocks straight from
// their extents in the arena's segment file, through a descriptor of its
// own, and the data never passes through user space on its way out.

// cursor is where a copy out reads from.
type cursor struct {
	pos    *int64 // the offset: b.off, or a Reader's
	shared bool   // pos is b.off, guarded by b.mu
	limit  int64  // the copy ends there (or at the end of the buffer); -1: no limit
}

// end returns where a copy at pos stops, for a buffer of size bytes.
func (c cursor) end(size int64) int64 {
	if c.limit >= 0 {
		return min(size, c.limit)
	}
	return size
}

// WriteTo implements Buffer.WriteTo.
func (b *store) WriteTo(w io.Writer) (int64, error) {
	return b.copyOut(w, cursor{pos: &b.off, shared: true, limit: -1})
}

// copyOut writes the buffer's bytes from c's offset to c's end to w,
// advancing the offset by the bytes w accepted.
func (b *store) copyOut(w io.Writer, c cursor) (n int64, err error) {
	st := b.newWriteStage()
	defer st.release()
	if n, err = b.sendFile(w, &st, c); err != nil {
		return n, err
	}
	buf := *st.buf
	// The shared offset moves under the buffer's lock held for writing; a
	// Reader's reads share it with other readers.
	lock, unlock := b.mu.RLock, b.mu.RUnlock
	if c.shared {
		lock, unlock = b.lock, b.unlock
	}
	for {
		lock()
		if b.closed {
			unlock()
			return n, ErrClosed
		}
		start := *c.pos
		p := buf
		if e := c.end(b.size); e-start < int64(len(p)) {
			p = p[:max(0, e-start)]
		}
		nr, rerr := 0, error(io.EOF)
		if len(p) > 0 {
			nr, rerr = b.readAt(p, start)
		}
		if c.shared {
			b.off = start + int64(nr)
		}
		unlock()
		if !c.shared {
			*c.pos = start + int64(nr)
		}
		if nr > 0 {
			nw, werr := w.Write(p[:nr])
			if nw < 0 || nw > nr {
				nw, werr = 0, fmt.Errorf("%w: Write returned %d for %d bytes", ErrInvalidCount, nw, nr)
			}
			n += int64(nw)
			if nw < nr {
				// Give back the offset of what w did not take.
				b.advance(c, start+int64(nr), start+int64(nw))
				if werr == nil {
					werr = io.ErrShortWrite
				}
				return n, werr
			}
			if werr != nil {
				return n, werr
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// advance moves c's offset from from to to, unless another operation
// moved the shared offset meanwhile.
func (b *store) advance(c cursor, from, to int64) {
	if !c.shared {
		*c.pos = to
		return
	}
	b.lock()
	if !b.closed && b.off == from {
		b.off = to
	}
	b.unlock()
}

// zeroCopySink returns w's ReadFrom if it is one of the standard library's
// that send from an *os.File without copies and run no user code: the
// lock protocol (lock.go) forbids user code under a lock, and a
// descriptor of the arena's segment file must reach no code that could
// read past the block handed to it. Those are *net.TCPConn's (sendfile),
// *os.File's (copy_file_range), and net/http's HTTP/1 response writer's,
// which hands an *io.LimitedReader of an *os.File on to its connection's.
func zeroCopySink(w io.Writer) io.ReaderFrom {
	switch w := w.(type) {
	case *net.TCPConn:
		return w
	case *os.File:
		return w
	}
	if rf, ok := w.(io.ReaderFrom); ok && reflect.TypeOf(w).String() == "*http.response" {
		return rf
	}
	return nil
}

// sendFile is the zero-copy part of a copy out: when b is on disk,
// unencrypted, and w is a zeroCopySink, it hands w the blocks straight
// from their extents in the arena's segment file, through a descriptor of
// its own.
//
// Each block is verified against its checksum first (which reads it once,
// into the stage, budget memory), so corruption is still an error, never
// bytes on the wire. The buffer's lock is held for reading while a block
// is verified, and released before the kernel sends it: the send can take
// as long as the peer likes, and no writer, nor Close, waits for it. The
// block's extent is pinned meanwhile (segment.pin), and tainted for good:
// if the buffer frees it (a write, a Truncate, a Close), the arena does
// not reuse it until the send is over, and not even then until its whole
// frame is punched out of the file, since the kernel may keep the pages
// it sent (a socket does, until the peer acknowledges them) and send them
// again after the call returns. So the bytes sent are always the
// buffer's own, at worst those it held just before a racing write, as
// with an *os.File, and never another buffer's. sendFile stops where the
// zero-copy path does not apply (bytes in memory, a hole, the end of what
// is on disk, a stage smaller than a block) and the copy goes on from
// there. It returns the bytes sent and an error only if w failed.
func (b *store) sendFile(w io.Writer, st *stage, c cursor) (n int64, err error) {
	rf := zeroCopySink(w)
	if rf == nil || int64(len(*st.buf)) < b.m.cs || b.m.arena.noZeroCopy.Load() {
		return 0, nil // no such sink, no room to verify a block, or no way to recycle what is sent
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
		pos := *c.pos
		i := pos / cs
		m := sp.meta.get(i)
		end := min(c.end(b.size), b.fileSize, i*cs+int64(m.valid))
		if pos >= end || m.ext == 0 {
			b.mu.RUnlock()
			return n, nil
		}
		if verr := sp.readVerified(i, m, (*st.buf)[:m.n]); verr != nil {
			b.mu.RUnlock()
			return n, nil // the copying path reports it
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
			b.advance(c, pos, pos+sent)
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
