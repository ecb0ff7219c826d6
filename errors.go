package spool

import "errors"

// Errors returned by spool. Errors from the operating system (a full disk,
// an I/O error) are returned wrapped, so errors.Is(err, syscall.ENOSPC)
// and errors.As(err, new(*os.PathError)) work on them.
var (
	// ErrClosed is returned by every method of a Buffer after its Close,
	// and by every method of a Manager after its Close (which also closes
	// all of its buffers).
	ErrClosed = errors.New("spool: closed")

	// ErrInvalid is returned by the methods of a nil or zero Buffer and of
	// a nil or zero Manager: use NewManager and Manager.NewBuffer.
	ErrInvalid = errors.New("spool: nil or zero Manager or Buffer")

	// ErrMemoryBackedTempDir is wrapped by the error NewManager returns
	// when the spill directory is on a memory-backed file system (tmpfs,
	// ramfs) and Options.AllowMemoryBackedTempDir is not set, and by
	// DefaultTempDir when os.TempDir() is memory-backed and no disk-backed
	// directory can take its place. Spilling there would keep spilled data
	// in RAM, outside the budget.
	ErrMemoryBackedTempDir = errors.New("spool: spill directory is memory-backed (tmpfs or ramfs)")

	// ErrInvalidOptions is wrapped by the error NewManager returns for an
	// invalid Options field; the message names the field.
	ErrInvalidOptions = errors.New("spool: invalid options")

	// ErrOverBudget is returned by Manager.SetMemoryBudget when the memory
	// in use could not be brought down to the new budget at once: the
	// buffers holding it were in use, or the disk refused their rollovers.
	// The new budget is in force all the same, and memory given back pays
	// off the difference first.
	ErrOverBudget = errors.New("spool: memory in use over the budget")

	// ErrNegativeOffset is returned for a negative offset passed to ReadAt
	// or WriteAt, and by Seek when the resulting position would be
	// negative.
	ErrNegativeOffset = errors.New("spool: negative offset")

	// ErrInvalidWhence is returned by Seek for a whence other than
	// io.SeekStart, io.SeekCurrent or io.SeekEnd.
	ErrInvalidWhence = errors.New("spool: invalid whence")

	// ErrNegativeSize is returned by Truncate for a negative size.
	ErrNegativeSize = errors.New("spool: negative size")

	// ErrDiskBudget is returned by a write or rollover that would take the
	// extents of spilled blocks past Options.DiskBudget. A write writes the blocks that
	// fit and its count says how many bytes that was; a rollover leaves
	// the chunks it did not move in memory. Data written before is intact.
	ErrDiskBudget = errors.New("spool: disk budget exhausted")

	// ErrSpillFiles was returned by a rollover that needed a spill file of
	// its own when Options.MaxSpillFiles were open.
	//
	// Deprecated: spilled buffers share the segment files of the Manager's
	// spill arena, so spilling never needs a file of its own, and spool no
	// longer returns this error.
	ErrSpillFiles = errors.New("spool: too many spill files")

	// ErrCorrupt is returned by reads of spilled data that fails its
	// checksum (or, with Options.EncryptSpill, its authentication): the
	// disk returned other bytes than were written. The bytes are never
	// returned.
	ErrCorrupt = errors.New("spool: spilled data corrupted")

	// ErrTooLarge is returned when an offset plus a length would overflow
	// int64, the largest size a Buffer can have.
	ErrTooLarge = errors.New("spool: offset out of range")

	// ErrUnread is returned by UnreadRune when the last operation on the
	// buffer's offset was not a ReadRune, and by UnreadByte when it read no
	// byte, as for bytes.Buffer.
	ErrUnread = errors.New("spool: nothing to unread")

	// ErrInvalidCount is returned by ReadFrom when the io.Reader's Read
	// returns a count below 0 or above len(p), and by WriteTo when the
	// io.Writer's Write does: such a count is a bug in that Reader or
	// Writer, and the bytes of that call are not taken as read or written.
	ErrInvalidCount = errors.New("spool: io.Reader or io.Writer returned an invalid count")

	// ErrNoMemoryLimit is returned by MemoryLimit and MemoryLimitFraction
	// when the process runs under no memory limit they can find: no cgroup
	// memory limit (outside a container, or a container without one) and
	// no GOMEMLIMIT. The caller chooses a budget of its own.
	ErrNoMemoryLimit = errors.New("spool: no memory limit")
)
