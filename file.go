package spool

import (
	"fmt"
	"os"
	"runtime"
)

// File returns a new read-only *os.File that holds a copy of the buffer's
// bytes, at offset 0: for a subprocess (as exec.Cmd's Stdin, or passed as
// one of its files) or an API that wants a file of its own, such as a
// virus scanner or a transcoder. It is the caller's: close it when done.
//
// The file is a snapshot, taken with the buffer's lock held for reading
// (writers wait for the copy): later writes to the buffer do not change
// it, and its offset is its own. It is created anonymous (O_TMPFILE) in
// the Manager's TempDir where the system supports it, and otherwise under
// a random name that is removed at once, so it disappears when closed. It
// is not counted in the memory or disk budgets.
//
// The copy is checked as it is made (every spilled block it reads is
// verified, and File returns ErrCorrupt rather than a file holding other
// bytes), but the file carries no checksums of its own: corruption of it
// later is not detected. With Options.EncryptSpill, the file holds the
// plaintext: it is meant for a program that reads it.
func (b *Buffer) File() (*os.File, error) {
	if !b.valid() {
		return nil, ErrInvalid
	}
	defer runtime.KeepAlive(b)
	return b.s.File()
}

// File implements Buffer.File.
func (b *store) File() (*os.File, error) {
	st := b.newWriteStage()
	defer st.release()
	f, done, err := newHandoff(b.m.opts.TempDir, b.m.opts.Pattern)
	if err != nil {
		return nil, fmt.Errorf("spool: File: %w", err)
	}
	if err := b.copyInto(f, *st.buf); err != nil {
		if ro, derr := done(); derr == nil {
			ro.Close()
		}
		return nil, err
	}
	ro, err := done()
	if err != nil {
		return nil, fmt.Errorf("spool: File: %w", err)
	}
	return ro, nil
}

// copyInto copies the buffer's bytes to f through buf, holding the
// buffer's lock for reading throughout, so that the copy is one state of
// the buffer.
func (b *store) copyInto(f *os.File, buf []byte) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	for pos := int64(0); pos < b.size; {
		p := buf[:min(int64(len(buf)), b.size-pos)]
		n, err := b.readAt(p, pos)
		if n < len(p) {
			return fmt.Errorf("spool: File: %w", err)
		}
		if _, err := f.WriteAt(p, pos); err != nil {
			return fmt.Errorf("spool: File: %w", err)
		}
		pos += int64(n)
	}
	return nil
}
