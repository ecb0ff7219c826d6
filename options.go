package spool

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// Defaults for zero Options fields.
const (
	// DefaultMemoryBudget is the budget used when Options.MemoryBudget is 0.
	DefaultMemoryBudget = 64 << 20
	// DefaultChunkSize is the chunk size used when Options.ChunkSize is 0.
	DefaultChunkSize = 64 << 10
	// DefaultPattern is the spill file name pattern used when
	// Options.Pattern is "".
	DefaultPattern = "spool-*"

	// MinChunkSize and MaxChunkSize bound Options.ChunkSize.
	MinChunkSize = 4 << 10
	MaxChunkSize = 1 << 20
)

// Options configures a Manager. The zero value is valid: a 64 MiB budget,
// 64 KiB chunks, no per-buffer threshold, spill files in os.TempDir(), the
// LargestFirst policy and no spill callback.
type Options struct {
	// MemoryBudget is the number of bytes of RAM that all buffers of the
	// Manager together may hold, counted by the capacity of the slices
	// that hold their data (see Manager). It is a hard limit: it is never
	// exceeded, even for a moment. 0 means DefaultMemoryBudget. It must
	// not be negative and, if set, must be at least ChunkSize.
	MemoryBudget int64

	// MemoryLimitFraction, if not 0, sets the budget to that fraction
	// (0 < f <= 1) of the memory limit the process runs under (see
	// MemoryLimitFraction: the container's cgroup limit or GOMEMLIMIT), at
	// least ChunkSize, in place of MemoryBudget, which must then be 0.
	// Where there is no limit to find (outside a container, without
	// GOMEMLIMIT), the budget is DefaultMemoryBudget.
	MemoryLimitFraction float64

	// MemoryLimitRefresh, if not 0, makes the Manager read the memory
	// limit again at that interval (at least a second) and apply
	// MemoryLimitFraction of it with SetMemoryBudget, as it changes, so
	// that the budget follows a container resized at run time (a limit
	// that disappears leaves the budget as it is). It requires
	// MemoryLimitFraction. A SetMemoryBudget that fails (ErrOverBudget)
	// is logged at Warn, and applied again at the next refresh.
	// Manager.Close stops it.
	MemoryLimitRefresh time.Duration

	// BufferThreshold caps the size of a single buffer kept in memory, like
	// the max_size of Python's SpooledTemporaryFile: a buffer whose size
	// would pass it rolls over to disk. 0 means no per-buffer cap; only the
	// budget decides. It must not be negative.
	BufferThreshold int64

	// ChunkSize is the allocation granule of buffer memory: a power of two
	// from MinChunkSize (4 KiB) to MaxChunkSize (1 MiB). 0 means
	// DefaultChunkSize (64 KiB).
	ChunkSize int

	// TempDir is the directory spill files are created in. It must exist,
	// be a directory in which spool can create a file (NewManager tries),
	// and, unless AllowMemoryBackedTempDir is set, not be on a
	// memory-backed file system (tmpfs, ramfs), whose files are RAM
	// outside the budget: NewManager returns an error wrapping
	// ErrMemoryBackedTempDir for one. "" means DefaultTempDir():
	// os.TempDir(), or /var/tmp where os.TempDir() is memory-backed.
	TempDir string

	// AllowMemoryBackedTempDir lets TempDir (or os.TempDir(), if TempDir
	// is "") be on a memory-backed file system. Spilled data then stays
	// in RAM, outside the budget: set it only where that is what you
	// want, for instance in tests or when the tmpfs has a size limit of
	// its own.
	AllowMemoryBackedTempDir bool

	// DiskBudget limits the disk space that the spill files of the Manager
	// may hold (Stats.DiskInUse): the granules, of max(4 KiB, ChunkSize/64)
	// bytes, that the extents of all spilled blocks overlap, and freed
	// granules not yet given back to the file system, which an extent that
	// would pass the limit gives back first. Holes take no extent and cost
	// nothing. It keeps a flood of data from filling the disk. A write
	// that would go past it writes the blocks that fit, returns their
	// count like any short write, and fails with ErrDiskBudget; a rollover
	// stops there too, leaving the chunks it did not move in memory.
	// Nothing written before is lost. 0 means no limit. It must not be
	// negative.
	DiskBudget int64

	// MaxSpillFiles is the number of spill files the Manager's spill arena
	// may open: shared segment files in which every spilled buffer keeps
	// its blocks, so that however many buffers spill, spool holds no more
	// file descriptors than this. Each buffer's blocks go to one segment,
	// the segments taken in turn, so several segments let writers spread
	// over files. 0 means two per CPU (2 × GOMAXPROCS at NewManager), at
	// least two. It must not be negative.
	MaxSpillFiles int

	// Pattern names spill files as the pattern of os.CreateTemp does (a
	// "*" is replaced by a random string). It is only visible where the
	// file system does not support anonymous files (O_TMPFILE); spill files
	// are unlinked right after they are created either way. "" means
	// DefaultPattern. It must not contain a path separator.
	Pattern string

	// Policy chooses which buffers roll over first when memory is short.
	// The zero value is LargestFirst.
	Policy Policy

	// DisablePromotion keeps spilled buffers on disk for good. By default,
	// under the LeastFrequentlyUsed policy, a spilled buffer that has
	// become hot comes back into memory (see LeastFrequentlyUsed); other
	// policies never promote.
	DisablePromotion bool

	// EncryptSpill encrypts spilled data with AES-256-GCM under a key
	// generated for the Manager from crypto/rand and kept only in memory,
	// so that spill files left on disk (after a crash, or read by another
	// process) are unreadable. Without it, spilled data is protected by
	// CRC-64 checksums, which detect corruption but hide nothing. Either
	// way a read returns ErrCorrupt rather than bytes that differ from
	// what was written.
	EncryptSpill bool

	// Logger, if not nil, receives spool's log: rollovers and promotions
	// at Debug, failed rollovers (disk errors) and buffers garbage-collected
	// without Close at Warn, each with structured attributes (buffer, reason,
	// size, moved, error). It is called holding no lock. nil means silent.
	Logger *slog.Logger

	// OnPromote, if not nil, is called after a spilled buffer came back
	// into memory. It is called on the Manager's promoter goroutine,
	// holding no lock, so it may call any method, Manager.Close included;
	// it should return quickly, as promotions wait for it.
	OnPromote func(PromoteEvent)

	// OnSpill, if not nil, is called after a buffer rolled over to disk,
	// or tried to and failed (SpillEvent.Err). It is called on the
	// goroutine whose operation caused the rollover (the promoter
	// goroutine, for rollovers that make room for a promotion), after that
	// operation has released every lock, so it may call methods of the
	// Manager and its buffers. It should return quickly: the operation
	// that caused the rollover returns only after OnSpill does.
	OnSpill func(SpillEvent)
}

// withDefaults validates o and returns a copy with zero fields replaced by
// their defaults.
func (o Options) withDefaults() (Options, error) {
	bad := func(field string, format string, args ...any) (Options, error) {
		return Options{}, fmt.Errorf("%w: %s %s", ErrInvalidOptions, field, fmt.Sprintf(format, args...))
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.ChunkSize < MinChunkSize || o.ChunkSize > MaxChunkSize || o.ChunkSize&(o.ChunkSize-1) != 0 {
		return bad("ChunkSize", "%d is not a power of two from %d to %d", o.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	if o.MemoryBudget < 0 {
		return bad("MemoryBudget", "%d is negative", o.MemoryBudget)
	}
	if f := o.MemoryLimitFraction; f != 0 {
		if !(f > 0 && f <= 1) {
			return bad("MemoryLimitFraction", "%v is not in (0, 1]", f)
		}
		if o.MemoryBudget != 0 {
			return bad("MemoryLimitFraction", "and MemoryBudget are both set")
		}
		n, err := limitBudget(f, int64(o.ChunkSize), DefaultMemoryBudget)
		if err != nil {
			return Options{}, fmt.Errorf("%w: MemoryLimitFraction: %w", ErrInvalidOptions, err)
		}
		o.MemoryBudget = n
	}
	switch r := o.MemoryLimitRefresh; {
	case r < 0 || (r > 0 && r < time.Second):
		return bad("MemoryLimitRefresh", "%v is not 0 or at least a second", r)
	case r > 0 && o.MemoryLimitFraction == 0:
		return bad("MemoryLimitRefresh", "is set without MemoryLimitFraction")
	}
	if o.MemoryBudget == 0 {
		o.MemoryBudget = DefaultMemoryBudget
	}
	if o.MemoryBudget < int64(o.ChunkSize) {
		return bad("MemoryBudget", "%d is smaller than ChunkSize %d", o.MemoryBudget, o.ChunkSize)
	}
	if o.BufferThreshold < 0 {
		return bad("BufferThreshold", "%d is negative", o.BufferThreshold)
	}
	if o.DiskBudget < 0 {
		return bad("DiskBudget", "%d is negative", o.DiskBudget)
	}
	if o.MaxSpillFiles < 0 {
		return bad("MaxSpillFiles", "%d is negative", o.MaxSpillFiles)
	}
	if o.Pattern == "" {
		o.Pattern = DefaultPattern
	}
	if strings.ContainsAny(o.Pattern, `/`+string(os.PathSeparator)) {
		return bad("Pattern", "%q contains a path separator", o.Pattern)
	}
	if !o.Policy.valid() {
		return bad("Policy", "%v is not a known policy", o.Policy)
	}
	dir, err := o.resolveTempDir()
	if err != nil {
		return Options{}, err
	}
	o.TempDir = dir
	return o, nil
}
