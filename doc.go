// Package spool hands out file-like buffers that together never hold more
// than a fixed number of bytes of RAM, and lose nothing when memory runs
// out: data that does not fit goes to temporary files.
//
// # The budget model
//
// A Manager owns one memory budget (Options.MemoryBudget) and hands out
// Buffers. A Buffer keeps its bytes in slots of Options.ChunkSize bytes;
// a slot holds a whole chunk, or for a buffer's small or last piece a
// slice of a size class (256 bytes, then steps of at most 1.25×, up to the
// chunk size), each class recycled through a free list of its own. Every
// slice a buffer holds counts against the budget by its capacity, so a
// buffer of n bytes written without holes is charged at most
// max(256, 1.25·n) bytes, whatever the chunk size, and large buffers still
// move whole chunks. The sum over all buffers of a Manager never exceeds
// the budget, not even for a moment: it is enforced by a weighted
// semaphore that is only ever tried, never waited on. (The budget can be
// resized: see An elastic budget, below.)
//
// Memory in flight counts too. ReadFrom and WriteTo move data through a
// stage taken from the budget (a ReadFrom reading a whole chunk at the
// end of a buffer in memory hands it to the buffer without a copy), and
// small reads of a spilled buffer may take, from the budget's free part
// only, a read window: a checked copy of the block (a chunk) being read,
// so that each block is read and checked once; writes short of memory take
// windows back first. Manager.Stats reports the memory in use, its peak,
// and the disk in use.
//
// # When data goes to disk
//
// A Buffer rolls over to disk when:
//   - Buffer.Rollover is called;
//   - it would grow past Options.BufferThreshold (if set) or past the whole
//     budget, or a write far past its end would leave a hole much larger
//     than the data it holds (holes cost nothing on disk);
//   - another buffer's write needs memory the budget lacks, and the
//     Manager's Policy picks it (LargestFirst, LeastRecentlyUsed or
//     LeastFrequentlyUsed): it is evicted, its chunks moved to disk lowest
//     first, only as many as the write lacks, one chunk at a time under
//     its lock, so that its owner never waits for more than one chunk's
//     write; buffers in use by another goroutine at that moment are
//     skipped, and an eviction stops as soon as the owner takes its buffer
//     back;
//   - its own write needs memory and rolling other buffers over did not
//     free enough.
//
// A buffer on disk stays there, except under LeastFrequentlyUsed: a
// spilled buffer that has become hot comes back into memory (promotion)
// when ristretto's TinyLFU admission finds it worth more than what it
// would displace and the budget has room, or can make room by rolling over
// buffers colder than it, each entirely (a write short of memory rolls a
// victim over only as far as it needs). Promotion runs on a goroutine of the Manager and
// never makes a reader wait; a read from disk offers its buffer, and
// while offers pile up faster than promotions, the densest offered buffer
// (reads per byte) is promoted first. Options.DisablePromotion turns it
// off.
//
// A rollover copies chunk by chunk and gives each chunk back as soon as it
// is on disk, so memory falls while it runs. No operation ever waits for
// memory: the write that cannot get any goes to disk instead.
//
// # An elastic budget
//
// The budget can change while the Manager runs. Manager.SetMemoryBudget
// grows it at once, or shrinks it: it moves buffers' chunks to disk, by
// the policy, until the memory in use fits, and from then on the smaller
// budget is as hard as the first; if the buffers holding the memory are
// busy, it says so (ErrOverBudget) and the memory they give back pays off
// the difference before anything else can take it. A budget can come from
// the environment: MemoryLimit reads the container's memory limit (cgroup
// v2 or v1) and GOMEMLIMIT, and Options.MemoryLimitFraction makes the
// budget a fraction of it, re-read every Options.MemoryLimitRefresh if
// set, so that the budget follows a container resized at run time.
//
// # Concurrency
//
// Every method of Manager and Buffer is safe for concurrent use. Each
// Buffer has its own lock; ReadAt calls share it and run in parallel. No
// spool lock is held while calling user code (the io.Reader or io.Writer
// given to ReadFrom or WriteTo, or Options.OnSpill), and a Buffer's
// methods never wait for another buffer's lock (they only try it, and skip
// a busy buffer), so spool cannot deadlock however many goroutines use
// however many buffers. Manager.Close waits for the operations in progress
// on each buffer to finish. The lock protocol is
// written down in lock.go.
//
// # Lifetimes
//
// Close a Buffer when done with it: that gives its memory back to the
// budget and its extents back to the spill arena. Manager.Close closes
// every buffer still open, and the arena's files. Spill files are created
// anonymous (O_TMPFILE) where the system supports it and are unlinked
// right after creation otherwise, so a crashed process leaves none
// behind.
//
// # Spilled data
//
// Spill files are created with mode 0600 and O_CLOEXEC, anonymous where
// possible, and otherwise with O_EXCL|O_NOFOLLOW under a random name that
// is unlinked at once: nothing planted in TempDir is ever followed. A spill
// directory on tmpfs or ramfs would keep spilled data in RAM, outside the
// budget: NewManager refuses one (ErrMemoryBackedTempDir) unless
// Options.AllowMemoryBackedTempDir is set, and with TempDir "" it spills
// to /var/tmp where os.TempDir() is memory-backed (DefaultTempDir).
//
// # The spill arena
//
// Spilled data does not get a file per buffer: every buffer of a Manager
// keeps its spilled blocks in a few shared segment files, the Manager's
// spill arena (at most Options.MaxSpillFiles, by default two per CPU), so
// the number of open files, and the cost of spilling, follow the bytes
// spilled, not the number of buffers. A block (one chunk of a buffer's
// data) takes an extent of the smallest class that holds it: a chunk, or a
// fraction from 1/64 of a chunk (at least 1 KiB) up, in steps of at most
// 1.5×. Extents are reused lowest first. Disk space is counted, and given
// back, in granules of max(4 KiB, ChunkSize/64) bytes of a file: a granule
// is held while an extent overlaps it. Freed granules are reused first and
// given back to the file system (punched out of the file, or cut off its
// end) at once when a whole frame of 3 chunks is free, and otherwise in
// bulk once they pass max(Stats.DiskLive/8, 1 MiB) (the largest runs of
// them, until they are under three quarters of that), or all of them when
// DiskBudget would refuse an extent; so the disk spool holds follows its
// live spilled bytes. Stats.DiskInUse counts the granules held, freed
// ones not yet given back included: what the files may hold on disk.
// Stats.DiskLive counts the data in the extents.
//
// A block is never overwritten in place: a write goes to a new extent,
// and the old one is freed once the new one is written (a write that
// appends to a block whose extent has room writes after the old bytes);
// so a write that fails leaves the block as it was.
//
// Every block is checked when read back: by a 64-bit CRC (CRC-64/NVME),
// or with Options.EncryptSpill by AES-256-GCM under a key that exists only
// in the Manager's memory, with a nonce that never repeats under that key
// and additional data that binds the block to its buffer, its place and
// its length. The checksums and tags are kept in memory, not in the
// files, so a disk that flips a bit, loses a write, returns stale pages,
// or hands back the bytes another buffer left in a reused extent cannot
// produce a block that passes: the read returns ErrCorrupt, never other
// bytes. CRC-64 detects every error burst of up to 64 bits and every odd
// number of flipped bits, and lets any other corruption through with a
// probability of 2^-64 per block, against 2^-32 for CRC-32C; it extends
// over appended bytes without the bytes before, and runs at 50-60 GB/s
// per core on a CPU with AVX-512, faster than the copies that move the
// data, and at about 10 GB/s on one without (AMD Zen 3: there it is about
// an eighth of spool's CPU time in the bench's uploads, README "Micro").
//
// Options.DiskBudget limits Stats.DiskInUse; past it (freed space given
// back first), writes and rollovers fail with ErrDiskBudget (a write's
// count says what it wrote before the limit, as for any short write), or,
// for a buffer made by Manager.NewBufferContext, wait in line for room
// while the buffer's context allows; Buffer.ReserveDisk sets room aside
// for a length known in advance, before the first write, so that an
// upload waits once, at its start, and its writes up to that length need
// no more. Disk errors (a full
// disk, an I/O error) are returned wrapped, so errors.Is(err,
// syscall.ENOSPC) works; a buffer has no sticky error and recovers when
// the disk does. Data written before an error stays intact and readable
// (see Buffer for the details).
//
// # HTTP, metrics and logs
//
// Package spoolhttp parses multipart forms and spools request bodies into
// Buffers of a Manager, so that every request of a server shares one
// budget, and serves Buffers with http.ServeContent, sending spilled
// blocks with sendfile. Package spoolexpvar publishes Stats with expvar.
// Packages spoolprom (Prometheus) and spoolotel (OpenTelemetry) export
// them as metrics; they are modules of their own, so that a program that
// uses neither does not depend on those libraries. Options.Logger takes a
// *slog.Logger.
//
// # Caveats
//
// Without EncryptSpill, spill files hold buffer data in plain text,
// readable by the same user through /proc while the process runs. A
// Buffer dropped without Close is cleaned up when the garbage collector
// finds it (Stats.Leaked counts those); until then its memory stays taken.
//
// # What the budget does not count
//
// The budget counts the memory that grows with the data. What remains
// outside it, measured with Go 1.26 on linux/amd64:
//   - per Buffer: about 300 bytes for the handle and its state, 8 bytes per
//     slot of its slot table (holes included, kept within a few times the
//     slots it holds: a write far past the end sends the buffer to disk;
//     a table that grew has room for up to 4 times its slots below 256,
//     twice above), and about 32 bytes per slice it holds;
//   - per spilled buffer: about 100 bytes, and 16 bytes per block on disk
//     (its extent, length and checksum; 40 with EncryptSpill);
//   - per Manager: a few KiB, the spill arena's open files and about 56
//     bytes per 3 chunks of each file; under LeastFrequentlyUsed with
//     promotion, ristretto's frequency sketch and buffers, about 4.3 MiB,
//     and three goroutines (the promoter and ristretto's two); up to 16
//     goroutines that roll buffers over for writers (offload.go), started
//     as needed, each with the stack it grew (8 KiB or so); and up to
//     two chunks per CPU (GOMAXPROCS when NewManager ran) lent to WriteTo
//     calls of buffers with data on disk that find no budget for a chunk,
//     so that they read and check each block once;
//   - per call in progress: a write that hands a rollover or an eviction
//     to the Manager's goroutines (offload.go) holds a record of 112
//     bytes until it is done, pooled; a ReadFrom or WriteTo that finds no free
//     budget at all (ReadFrom first rolls other buffers over for it), nor
//     for a WriteTo from disk a lent chunk, moves data through a 1 KiB
//     spare slice; a read or rewrite of part of a spilled block reads
//     and checks the whole block through a scratch
//     chunk while it holds the buffer's lock, as does an append to a
//     spilled block that outgrew its extent where the kernel cannot copy
//     the block to a larger one itself (copy_file_range: Linux, without
//     EncryptSpill);
//   - per goroutine: a write to a spill file takes about 1.4 KiB of stack
//     below Buffer.ReadFrom, the system call included; a goroutine that was
//     already using more than about 1.7 KiB when it called grows its stack
//     from 4 to 8 KiB, and keeps it until a collection finds it mostly
//     unused. Rollovers, which go deeper, run on the Manager's own
//     goroutines instead (offload.go), and so do evictions while more
//     than 8 writes are short of memory at once: in the bench's slow
//     scenario (10,000 uploads through io.Copy), the uploads' stacks take
//     40-45 MiB, against 40 MiB for the same goroutines with a sink that
//     discards (65-74 MiB when every goroutine rolled over on its own);
//   - slices given back wait in free lists for reuse (memory.go): whole
//     chunks never outnumber the most ever in use, and the smaller classes
//     that growing buffers trade in are kept up to 1/32 of the budget (at
//     most 8 chunks), the classes given back last first; past that they
//     are let go.
//
// # Where the budget's memory lives
//
// On Unix systems (outside the race detector), the budget's memory is
// mapped from the operating system (mmap), not taken from Go's heap. The
// slices larger than 32 KiB, whole chunks among them, each have a mapping
// of their own, unmapped as soon as spool lets them go; the smaller ones
// are cut from slabs of 256 KiB, each holding slices of one size, and
// unmapped when the last of their slices is let go. The pages of a slice
// that is whole pages of 16 KiB or more (16, 24, 28, 32 KiB, and every
// larger one) are given back to the system as soon as spool lets it go,
// so for those the RSS follows the memory in use down at once; a slab of
// other slices gives back the pages that no slice in use shares, eight at
// a time (32 KiB of 4 KiB pages), so it keeps fewer than eight such pages
// beside those its slices in use touch. The garbage collector
// neither scans this memory nor paces itself on it, so filling the budget
// starts no collection (whose start stalls every goroutine that allocates
// meanwhile), and a budget of small slices does not double the heap's
// goal: in the bench's slow scenario (10,000 uploads into a 16 MiB
// budget) the heap peaked at 17-28 MiB against 62-69 MiB with those slices
// on Go's heap. Stats.MemoryMapped says how much is mapped, slabs whole.
// At most 16,384 mappings are held at once (1 GiB of 64 KiB chunks), to
// stay well within the kernel's limit on a process's mappings; past that,
// slices come from Go's heap: let go, they wait for the collector, whose
// pace (GOGC, GOMEMLIMIT) decides when their memory is reused.
//
// So the process's RSS is the budget plus what is listed above, plus the
// pages slabs keep beside their slices in use, plus what the collector has
// not yet reclaimed of the heap: with GOGC alone, up to the live heap and
// the goroutine stacks again. GOMEMLIMIT bounds Go's own memory, not the
// mapped slices: with a process limit L and a budget B,
// set GOMEMLIMIT (debug.SetMemoryLimit) to about L − B, unless the budget
// is read from GOMEMLIMIT itself with Options.MemoryLimitRefresh, which
// would then follow it down (MemoryLimitFraction). A server whose buffers
// all grow at once (10,000 buffers of 52 KiB filled round robin, the
// bench's scale scenario) peaked at 76 MiB on a 64 MiB budget, where it
// peaked at 110-129 MiB with every slice on Go's heap.
//
// The budget's slices, mapped ones among them, are handed to the Read of
// the io.Reader given to ReadFrom and to the Write of the io.Writer given
// to WriteTo. Like any io.Reader and io.Writer, those must not retain the
// slice once they return: a mapped one may be unmapped afterwards, and
// touching it then faults.
package spool
