//go:build linux

package spool_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/spoolkit/spool"
)

// mountTmpfs mounts a tmpfs with the given options on a new directory and
// unmounts it at the end of the test. It skips the test when not root or
// when mounting is not allowed here.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs (CI runs as root)")
	}
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func remount(t *testing.T, dir, opts string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+opts, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s: %v: %s", opts, err, out)
	}
}

// TestENOSPCTmpfs drives writes past a real 1 MiB file system: the caller
// gets ENOSPC; every acknowledged byte reads back; a Truncate that grows
// succeeds while a write into its hole fails; the budget is released; and
// once space is freed, new buffers work.
func TestENOSPCTmpfs(t *testing.T) {
	dir := mountTmpfs(t, "size=1m")
	const budget = 16 * 4096
	m, err := spool.NewManager(spool.Options{MemoryBudget: budget, ChunkSize: 4096, TempDir: dir, AllowMemoryBackedTempDir: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	var bufs []*spool.Buffer
	var acked [][]byte
	var full error
	piece := randBytes(21, 16<<10)
	for i := 0; full == nil && i < 64; i++ {
		b, err := m.NewBuffer()
		if err != nil {
			t.Fatal(err)
		}
		bufs = append(bufs, b)
		acked = append(acked, nil)
		for j := 0; j < 16; j++ {
			n, err := b.Write(piece)
			acked[i] = append(acked[i], piece[:n]...)
			if err != nil {
				full = err
				break
			}
			if st := m.Stats(); st.MemoryInUse > budget {
				t.Fatalf("MemoryInUse %d > budget", st.MemoryInUse)
			}
		}
	}
	if !errors.Is(full, syscall.ENOSPC) {
		t.Fatalf("writing 16 MiB to a 1 MiB tmpfs: err = %v, want ENOSPC", full)
	}
	total := 0
	for i, b := range bufs {
		wantContent(t, b, acked[i])
		total += len(acked[i])
	}
	t.Logf("disk full after %d acknowledged bytes in %d buffers: %v", total, len(bufs), full)

	// Growing with Truncate takes no space; writing into the hole needs it.
	last := bufs[len(bufs)-1]
	if !last.OnDisk() {
		if err := last.Rollover(); err != nil && !errors.Is(err, syscall.ENOSPC) {
			t.Fatal(err)
		}
	}
	if last.OnDisk() {
		size := last.Size()
		if err := last.Truncate(size + 512<<10); err != nil {
			t.Fatalf("Truncate to grow on a full disk = %v", err)
		}
		n, err := last.WriteAt(piece, size+256<<10)
		if n != 0 || !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("WriteAt into the hole on a full disk = %d, %v; want 0, ENOSPC", n, err)
		}
		want := append(append([]byte(nil), acked[len(acked)-1]...), make([]byte, 512<<10)...)
		wantContent(t, last, want)
		if err := last.Truncate(size); err != nil {
			t.Fatal(err)
		}
	}

	for _, b := range bufs {
		if err := b.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	}
	if st := m.Stats(); st.MemoryInUse != 0 || st.DiskInUse != 0 {
		t.Errorf("after Close: %+v", st)
	}
	// Space is free again: a new buffer spills and reads back.
	b, _ := m.NewBuffer()
	data := randBytes(22, 600<<10)
	if _, err := b.Write(data); err != nil {
		t.Fatalf("Write after space was freed = %v", err)
	}
	if !b.OnDisk() {
		t.Error("600 KiB under a 64 KiB budget is not on disk")
	}
	wantContent(t, b, data)
}

// TestENOSPCNoInodes: on a file system with no free inode, creating a
// spill file fails: writes that need one get ENOSPC, the buffers stay in
// memory with every byte, the budget is exact, and once inodes are free
// again rollovers work.
func TestENOSPCNoInodes(t *testing.T) {
	dir := mountTmpfs(t, "size=1m,nr_inodes=100")
	m, err := spool.NewManager(spool.Options{MemoryBudget: 8 * 4096, ChunkSize: 4096, TempDir: dir, AllowMemoryBackedTempDir: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	remount(t, dir, "nr_inodes=1") // the root directory's: none is free
	a, _ := m.NewBuffer()
	da := randBytes(23, 6*4096)
	if _, err := a.Write(da); err != nil {
		t.Fatal(err)
	}
	b, _ := m.NewBuffer()
	db := randBytes(24, 2*4096)
	if _, err := b.Write(db); err != nil {
		t.Fatal(err)
	}
	n, err := b.Write(randBytes(25, 4096)) // needs memory: a must spill, and cannot
	if n != 0 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Write needing a spill file = %d, %v; want 0, ENOSPC", n, err)
	}
	if err := a.Rollover(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Rollover = %v, want ENOSPC", err)
	}
	if a.OnDisk() || b.OnDisk() {
		t.Error("a buffer claims to be on disk without a file")
	}
	if st := m.Stats(); st.MemoryInUse != 8*4096 || st.BuffersOnDisk != 0 {
		t.Errorf("after failed spills: %+v", st)
	}
	wantContent(t, a, da)
	wantContent(t, b, db)

	remount(t, dir, "nr_inodes=100")
	more := randBytes(25, 4096)
	if _, err := b.Write(more); err != nil {
		t.Fatalf("Write once inodes are free = %v", err)
	}
	if !a.OnDisk() {
		t.Error("a was not spilled to make room")
	}
	wantContent(t, a, da)
	wantContent(t, b, append(db, more...))
}

// TestMemoryBackedTempDir: a spill directory on a tmpfs is refused with
// ErrMemoryBackedTempDir unless AllowMemoryBackedTempDir is set; with
// TempDir "" and os.TempDir() on a tmpfs, the Manager spills to a
// disk-backed directory instead; a directory in which no spill file can be
// created is refused at NewManager, not at the first rollover.
func TestMemoryBackedTempDir(t *testing.T) {
	dir := mountTmpfs(t, "size=1m")
	_, err := spool.NewManager(spool.Options{TempDir: dir})
	if !errors.Is(err, spool.ErrMemoryBackedTempDir) || !errors.Is(err, spool.ErrInvalidOptions) {
		t.Errorf("NewManager with a tmpfs TempDir = %v, want ErrMemoryBackedTempDir", err)
	}
	m, err := spool.NewManager(spool.Options{TempDir: dir, AllowMemoryBackedTempDir: true})
	if err != nil {
		t.Fatalf("NewManager with AllowMemoryBackedTempDir = %v", err)
	}
	m.Close()

	t.Setenv("TMPDIR", dir) // os.TempDir() is now the tmpfs
	def, err := spool.DefaultTempDir()
	if err != nil {
		t.Skipf("no disk-backed fallback on this machine: %v", err)
	}
	if def == dir {
		t.Fatalf("DefaultTempDir() = %q, the tmpfs", def)
	}
	m, err = spool.NewManager(spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.TempDir() != def {
		t.Errorf("Manager.TempDir() = %q, want %q", m.TempDir(), def)
	}
	b, _ := m.NewBuffer()
	b.Write([]byte("spilled to disk"))
	if err := b.Rollover(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("the tmpfs holds %d entries", len(ents))
	}
	wantContent(t, b, []byte("spilled to disk"))

	// A read-only directory takes no spill file: NewManager says so.
	ro := mountTmpfs(t, "size=1m,ro")
	if _, err := spool.NewManager(spool.Options{TempDir: ro, AllowMemoryBackedTempDir: true}); !errors.Is(err, syscall.EROFS) || !errors.Is(err, spool.ErrInvalidOptions) {
		t.Errorf("NewManager with a read-only TempDir = %v, want EROFS", err)
	}
}
