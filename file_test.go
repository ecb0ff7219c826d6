package spool_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/spoolkit/spool"
)

const shaChildEnv = "SPOOL_TEST_SHA_CHILD"

func init() {
	if os.Getenv(shaChildEnv) != "" {
		shaChild()
	}
}

// shaChild is the subprocess of TestFileSubprocess: it prints the size of
// the regular file it was given as its standard input, and the SHA-256 of
// what it reads from it. It never returns.
func shaChild() {
	fi, err := os.Stdin.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		fmt.Printf("stdin is not a regular file: %v, %v\n", fi, err)
		os.Exit(1)
	}
	h := sha256.New()
	if _, err := io.Copy(h, os.Stdin); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Printf("%d %x\n", fi.Size(), h.Sum(nil))
	os.Exit(0)
}

// TestFileSubprocess: the file File returns is a regular file a
// subprocess reads as its standard input, holding the buffer's bytes (in
// plaintext with EncryptSpill) from offset 0 whatever the buffer's offset;
// it is read-only, and a snapshot: writes to the buffer after File do not
// change it.
func TestFileSubprocess(t *testing.T) {
	data := randBytes(201, 5*blk+4321)
	for _, c := range []struct {
		name    string
		spill   bool
		encrypt bool
	}{{"memory", false, false}, {"spilled", true, false}, {"encrypted", true, true}} {
		m, err := spool.NewManager(spool.Options{ChunkSize: blk, MemoryBudget: 1 << 20, TempDir: t.TempDir(), EncryptSpill: c.encrypt})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := m.NewBuffer()
		b.Write(data)
		if c.spill {
			if err := b.Rollover(); err != nil {
				t.Fatal(err)
			}
		}
		b.Seek(123, io.SeekStart)
		f, err := b.File()
		if err != nil {
			t.Fatalf("%s: File: %v", c.name, err)
		}
		b.WriteAt([]byte("changed after File"), 0)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), shaChildEnv+"=1")
		cmd.Stdin = f
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: child: %v\n%s", c.name, err, out)
		}
		if want := fmt.Sprintf("%d %x\n", len(data), sha256.Sum256(data)); string(out) != want {
			t.Errorf("%s: the child read %q, want %q", c.name, out, want)
		}
		if _, err := f.Write([]byte("x")); err == nil {
			t.Errorf("%s: the file is writable", c.name)
		}
		got, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<30))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: ReadAt of the file after a write to the buffer: %d bytes, %v, intact %v", c.name, len(got), err, bytes.Equal(got, data))
		}
		if c.encrypt {
			raw, err := spool.ArenaBytes(m)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(raw, data[:64]) {
				t.Error("the spill arena holds plaintext")
			}
		}
		f.Close()
		m.Close()
	}
}

// TestFileLeavesNoName: File's file has no name in the Manager's TempDir
// (it is anonymous, or its name is removed at once), is not counted in the
// budgets, and a failed File closes what it opened.
func TestFileLeavesNoName(t *testing.T) {
	dir := t.TempDir()
	m, err := spool.NewManager(spool.Options{ChunkSize: blk, MemoryBudget: 1 << 20, TempDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	data := randBytes(202, 8*blk)
	b := spillInto(t, m, data)
	names := func() string {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, e := range ents {
			s = append(s, e.Name())
		}
		return strings.Join(s, ",")
	}
	before, st := names(), m.Stats()
	f, err := b.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if after := names(); after != before {
		t.Errorf("TempDir holds %q after File, %q before", after, before)
	}
	if st2 := m.Stats(); st2.MemoryInUse != st.MemoryInUse || st2.DiskLive != st.DiskLive || st2.DiskInUse != st.DiskInUse {
		t.Errorf("File changed the budgets: memory %d → %d, disk live %d → %d, disk in use %d → %d",
			st.MemoryInUse, st2.MemoryInUse, st.DiskLive, st2.DiskLive, st.DiskInUse, st2.DiskInUse)
	}

	// A corrupt block: ErrCorrupt, and no descriptor left open.
	flip(t, spool.RawSpillFile(b), 3*blk+7, 0x10)
	fds := 0
	if runtime.GOOS == "linux" {
		fds = openFDs(t)
	}
	for range 20 {
		if f, err := b.File(); !errors.Is(err, spool.ErrCorrupt) {
			t.Fatalf("File of a corrupt buffer = %v, %v; want ErrCorrupt", f, err)
		}
	}
	if runtime.GOOS == "linux" {
		if n := openFDs(t); n > fds {
			t.Errorf("%d descriptors open after 20 failed Files, %d before", n, fds)
		}
	}
	if names() != before {
		t.Errorf("failed Files left names in TempDir: %q", names())
	}
}

// TestFileSnapshot: File copies one state of the buffer, even while a
// writer rewrites the whole buffer, generation after generation, beside
// it.
func TestFileSnapshot(t *testing.T) {
	m, err := spool.NewManager(spool.Options{ChunkSize: blk, MemoryBudget: 64 << 10, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const size = 24 * blk // more than the budget: partly on disk
	b, _ := m.NewBuffer()
	b.Write(bytes.Repeat([]byte{1}, size))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for g := 2; ; g++ {
			select {
			case <-stop:
				return
			default:
			}
			b.WriteAt(bytes.Repeat([]byte{byte(g%255 + 1)}, size), 0)
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	for range sized(5, 20, 200) {
		f, err := b.File()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(f)
		f.Close()
		if err != nil || len(got) != size {
			t.Fatalf("read %d bytes of the file, %v", len(got), err)
		}
		for i, c := range got {
			if c != got[0] {
				t.Fatalf("the file mixes generations %d and %d (at %d)", got[0], c, i)
			}
		}
	}
}

// TestFileMisuse: File of a closed, nil or zero Buffer returns an error.
func TestFileMisuse(t *testing.T) {
	m := readerManager(t)
	b, _ := m.NewBuffer()
	b.Close()
	if f, err := b.File(); f != nil || !errors.Is(err, spool.ErrClosed) {
		t.Errorf("File after Close = %v, %v", f, err)
	}
	var nilB *spool.Buffer
	var zero spool.Buffer
	for _, b := range []*spool.Buffer{nilB, &zero} {
		if f, err := b.File(); f != nil || !errors.Is(err, spool.ErrInvalid) {
			t.Errorf("File of a nil or zero Buffer = %v, %v", f, err)
		}
	}
}
