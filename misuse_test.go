package spool_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/spoolkit/spool"
)

// bufferCalls calls every method of Buffer on b and returns each error by
// method name. It must not panic, whatever b is.
func bufferCalls(b *spool.Buffer) map[string]error {
	errs := map[string]error{}
	_, errs["Write"] = b.Write([]byte("x"))
	_, errs["WriteString"] = b.WriteString("x")
	errs["WriteByte"] = b.WriteByte('x')
	_, errs["WriteAt"] = b.WriteAt([]byte("x"), 0)
	_, errs["Read"] = b.Read(make([]byte, 1))
	_, errs["ReadByte"] = b.ReadByte()
	_, errs["ReadAt"] = b.ReadAt(make([]byte, 1), 0)
	_, errs["Seek"] = b.Seek(0, io.SeekStart)
	errs["Truncate"] = b.Truncate(0)
	errs["Rollover"] = b.Rollover()
	_, errs["ReadFrom"] = b.ReadFrom(bytes.NewReader([]byte("x")))
	_, errs["WriteTo"] = b.WriteTo(io.Discard)
	errs["Close"] = b.Close()
	return errs
}

// TestNilAndZeroBuffer: every method of a nil *Buffer and of a zero Buffer
// returns ErrInvalid, as those of a nil *os.File return os.ErrInvalid; none
// panics, and none is a fatal runtime error (issue 10, item 1: Close ran
// runtime.SetFinalizer on nil, which kills the process).
func TestNilAndZeroBuffer(t *testing.T) {
	for name, b := range map[string]*spool.Buffer{"nil": nil, "zero": new(spool.Buffer)} {
		t.Run(name, func(t *testing.T) {
			for method, err := range bufferCalls(b) {
				if !errors.Is(err, spool.ErrInvalid) {
					t.Errorf("%s = %v, want ErrInvalid", method, err)
				}
			}
			if b.Size() != 0 || b.OnDisk() || b.ID() != 0 {
				t.Errorf("Size, OnDisk, ID = %d, %v, %d; want 0, false, 0", b.Size(), b.OnDisk(), b.ID())
			}
		})
	}
}

// TestDeferredCloseBeforeErrorCheck: the slip of deferring Close before
// checking NewBuffer's error, on a closed Manager, returns errors and does
// not crash the process.
func TestDeferredCloseBeforeErrorCheck(t *testing.T) {
	m, err := spool.NewManager(spool.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	var closeErr error
	func() {
		buf, err := m.NewBuffer()
		defer func() { closeErr = buf.Close() }()
		if !errors.Is(err, spool.ErrClosed) || buf != nil {
			t.Errorf("NewBuffer on a closed Manager = %v, %v; want nil, ErrClosed", buf, err)
		}
	}()
	if !errors.Is(closeErr, spool.ErrInvalid) {
		t.Errorf("Close of the nil Buffer = %v, want ErrInvalid", closeErr)
	}
}

// TestNilAndZeroManager: a nil *Manager and a zero Manager refuse to hand
// out buffers (issue 10, item 4: the zero Manager's NewBuffer succeeded and
// the first Write panicked), Close returns ErrInvalid, Stats is zero.
func TestNilAndZeroManager(t *testing.T) {
	for name, m := range map[string]*spool.Manager{"nil": nil, "zero": new(spool.Manager)} {
		t.Run(name, func(t *testing.T) {
			if b, err := m.NewBuffer(); b != nil || !errors.Is(err, spool.ErrInvalid) {
				t.Errorf("NewBuffer = %v, %v; want nil, ErrInvalid", b, err)
			}
			if err := m.Close(); !errors.Is(err, spool.ErrInvalid) {
				t.Errorf("Close = %v, want ErrInvalid", err)
			}
			if st := m.Stats(); st != (spool.Stats{}) {
				t.Errorf("Stats = %+v, want zero", st)
			}
		})
	}
}
