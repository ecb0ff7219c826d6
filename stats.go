package spool

import (
	"fmt"
	"time"
)

// Stats is a snapshot of a Manager's counters, as returned by
// Manager.Stats. The fields are read one by one without stopping the
// Manager, so under concurrent use they may not add up exactly; each field
// on its own is exact at the moment it was read.
type Stats struct {
	// MemoryBudget is the budget the Manager enforces, in bytes: as set
	// in Options or by the last Manager.SetMemoryBudget. MemoryInUse may
	// be above it only while a shrink is paid off (SetMemoryBudget,
	// ErrOverBudget), and then only falls.
	MemoryBudget int64
	// MemoryInUse is the budget memory in use, in bytes: the slices that
	// hold the live buffers' data, counted by capacity, their read
	// windows, and the stages of the ReadFrom and WriteTo calls in
	// progress. It never exceeds MemoryBudget.
	MemoryInUse int64
	// PeakMemoryInUse is the highest MemoryInUse since the Manager was
	// created: what the budget had to cover at worst. It never exceeds
	// MemoryBudget.
	PeakMemoryInUse int64
	// MemoryMapped is the bytes of budget memory mapped from the operating
	// system outside Go's heap: the slices in use (part of MemoryInUse) or
	// waiting in the free lists for reuse, and the rest of the slabs the
	// small ones are cut from (see "Where the budget's memory lives" in
	// the package documentation). Of a slab, only the pages ever used
	// take memory. Go's runtime metrics and GOMEMLIMIT do not
	// see this memory; the process's RSS does. 0 where nothing is mapped
	// (no mmap, or under the race detector).
	MemoryMapped int64
	// ReadWindows is the number of read windows held: checked copies of
	// one block (a chunk) of spilled data each, which make small reads of
	// spilled data read and check each block once. They take only budget
	// that is free, and a write short of memory takes them back before it
	// rolls any buffer over (passing over only a window being copied from
	// at that instant). MemoryInUse includes their ReadWindows × ChunkSize.
	ReadWindows int
	// DiskBudget is the limit on DiskInUse, or 0 for none: as set in
	// Options or by the last Manager.SetDiskBudget. DiskInUse is above it
	// only after a SetDiskBudget below it, until buffers give space back.
	DiskBudget int64
	// DiskInUse is the disk space, in bytes, that the spill files may hold:
	// what DiskBudget limits. It is counted in granules of a spill file,
	// max(4 KiB, ChunkSize/64) bytes each, the unit in which spool gives
	// space back to the file system: every granule that an extent holding
	// a spilled block overlaps (a block of n bytes takes an extent of the
	// smallest class that holds n: 1 KiB, or ChunkSize/64 if larger, up to
	// a chunk, in steps of at most 1.5×; small extents share granules),
	// and the freed granules not yet given back. Freed space is reused
	// first; a frame of 3 chunks whose extents are all free is given back
	// at once (punched out of its file, or cut off its end), other freed
	// granules in bulk once they pass max(DiskLive/8, 1 MiB) (the largest
	// runs of them, until they are under three quarters of that), or all
	// of them when an extent would take DiskInUse past DiskBudget. So
	// after each operation DiskInUse is at most the granules of the live
	// extents plus max(DiskLive/8, 1 MiB), and the files hold no more than
	// DiskInUse (but for the file system's own metadata). Exceptions, which only
	// count more: an extent that a zero-copy WriteTo sent and that was
	// freed keeps its granules until its whole frame is free; where the
	// file system cannot punch holes, freed granules stay counted until
	// they are reused or cut off. Holes (left by Truncate or by a write
	// past the end) take nothing; what a failed write took is given back
	// at once. Room set aside by Buffer.ReserveDisk, or granted to a
	// waiting write, counts from the moment it is granted until it is
	// spent or given back (by Close, or by the write that waited for it).
	// It never exceeds DiskBudget, but after a SetDiskBudget below it.
	DiskInUse int64
	// DiskLive is the number of bytes of buffer data in those extents:
	// what DiskInUse would be without the rounding up to extent classes
	// and granules, and without freed space.
	DiskLive int64
	// SpillFiles is the number of spill files open: the segments of the
	// Manager's spill arena, shared by all its buffers. It never exceeds
	// Options.MaxSpillFiles (by default two per CPU). The first is created
	// in the background when MemoryInUse first reaches half the budget,
	// before anything spills, so that the first spills do not wait for it;
	// the others as buffers spill.
	SpillFiles int
	// Buffers is the number of live (not closed) buffers.
	Buffers int
	// BuffersOnDisk is the number of live buffers with data on disk.
	BuffersOnDisk int
	// Spills is the number of rollovers that moved data to disk and
	// completed, whatever their reason, evictions included (one per buffer
	// per eviction, however many of its chunks it moved).
	Spills int64
	// SpilledBytes is the number of bytes copied from memory to disk by
	// rollovers.
	SpilledBytes int64
	// DiskWritten is the number of bytes written to spill files, by
	// rollovers and by writes to buffers already on disk, as the kernel
	// received them: a block rewritten to a new extent counts whole.
	DiskWritten int64
	// Evictions is the number of evictions (SpillEvicted): a buffer's
	// chunks moved to disk to free memory for a write to another buffer,
	// or for Manager.SetMemoryBudget, counted once per buffer per write
	// however many chunks moved. It is included in Spills.
	Evictions int64
	// Leaked is the number of buffers that were garbage-collected without
	// Close; their memory and disk were released then.
	Leaked int64
	// Promotions is the number of spilled buffers brought back into
	// memory (LeastFrequentlyUsed), and PromotedBytes the bytes loaded
	// from disk to do it (of a buffer partly in memory, only the part on
	// disk).
	Promotions    int64
	PromotedBytes int64
	// PromotionsRejected counts candidates that ristretto's TinyLFU
	// admission turned down, and PromotionsNoRoom those it admitted but
	// that found no room: only buffers at least as hot held the memory.
	PromotionsRejected int64
	PromotionsNoRoom   int64
	// SkippedBusy counts buffers the policy chose to roll over but
	// skipped, because another goroutine was using them.
	SkippedBusy int64
	// Reads is the number of reads (Read, ReadAt, ReadByte, and each
	// piece of WriteTo) that returned data, ReadsFromMemory those served
	// entirely from memory; ReadBytes and ReadBytesFromMemory count
	// their bytes.
	Reads               int64
	ReadsFromMemory     int64
	ReadBytes           int64
	ReadBytesFromMemory int64
	// ZeroCopyBytes is the number of bytes the WriteTo of a Buffer or a
	// Reader handed its writer as a descriptor of a spill file, after
	// checking them, instead of copying them out: a *net.TCPConn sends
	// them with sendfile and an *os.File copies them with
	// copy_file_range, in the kernel. net/http's HTTP/1 ResponseWriter
	// does the same over a plain TCP connection with a Content-Length,
	// but over TLS, or for a chunked reply, it reads them through user
	// space itself (spoolhttp.ServeBuffer avoids those cases); they are
	// counted all the same. They are counted in Reads and ReadBytes too,
	// as reads from disk.
	ZeroCopyBytes int64
	// SpillTime is the total time spent rolling buffers over to disk, and
	// EvictionWait the part of writers' time spent waiting while other
	// buffers were rolled over to make room for them: what a full budget
	// cost the writers.
	SpillTime    time.Duration
	EvictionWait time.Duration
	// SpillErrors is the number of rollovers that failed: with a disk
	// error, or at the disk budget. The data of such a buffer is intact
	// and it stays usable.
	SpillErrors int64
	// DiskWaiters is the number of writes waiting for disk budget now
	// (buffers made by Manager.NewBufferContext), and DiskWaitTime the
	// total time writes have waited for it.
	DiskWaiters  int
	DiskWaitTime time.Duration
}

// SpillReason says why a buffer rolled over to disk.
type SpillReason int

const (
	// SpillRequested: Buffer.Rollover was called.
	SpillRequested SpillReason = iota + 1
	// SpillThreshold: the buffer would have grown past
	// Options.BufferThreshold.
	SpillThreshold
	// SpillTooLarge: the buffer would have grown past the whole memory
	// budget.
	SpillTooLarge
	// SpillBudget: a write to this buffer needed memory, and rolling other
	// buffers over did not free enough, so this buffer went to disk.
	SpillBudget
	// SpillEvicted: the policy chose this buffer to free memory for a
	// write to another buffer, or for Manager.SetMemoryBudget. Only as many
	// of its chunks as were needed went to disk (SpillEvent.Moved); the
	// rest stays in memory.
	SpillEvicted
	// SpillSparse: a write far past the end would have left a hole much
	// larger than the data the buffer holds; holes cost nothing on disk.
	SpillSparse
)

// String returns the reason's name, as in the constant without "Spill".
func (r SpillReason) String() string {
	switch r {
	case SpillRequested:
		return "Requested"
	case SpillThreshold:
		return "Threshold"
	case SpillTooLarge:
		return "TooLarge"
	case SpillBudget:
		return "Budget"
	case SpillEvicted:
		return "Evicted"
	case SpillSparse:
		return "Sparse"
	}
	return fmt.Sprintf("SpillReason(%d)", int(r))
}

// SpillEvent describes one rollover, for Options.OnSpill.
type SpillEvent struct {
	// Buffer is the ID of the buffer that rolled over (Buffer.ID).
	Buffer uint64
	// Reason says why it rolled over.
	Reason SpillReason
	// Size is the buffer's size in bytes at the time.
	Size int64
	// Moved is the number of bytes copied from memory to disk: for an
	// eviction, those of the chunks it took, which may be part of the
	// buffer's memory.
	Moved int64
	// Err is nil if the rollover completed. Otherwise the rollover stopped
	// at a disk error: the buffer's data is intact, part of it possibly
	// still in memory, and the buffer stays usable.
	Err error
}

// PromoteEvent describes a spilled buffer that came back into memory, for
// Options.OnPromote.
type PromoteEvent struct {
	// Buffer is the ID of the buffer (Buffer.ID).
	Buffer uint64
	// Size is its size in bytes, all of it now in memory.
	Size int64
}
