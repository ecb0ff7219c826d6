package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Reading the profiles the children write (-profile): the CPU profiles, to
// attribute their CPU time to what spool does (the scale scenario reports
// the share spent creating and closing spill files), and the mutex
// profiles, to measure lock contention (mutexprof.go). A profile is a gzipped
// profile.proto message (github.com/google/pprof/proto/profile.proto), of
// which this reads only the samples, their values and stacks, and the
// names of the functions in those stacks, with the standard library: the
// bench would otherwise need github.com/google/pprof/profile in the
// module's go.mod.

// ProfileShare is the CPU time of a profile's samples, of those with a
// frame of package spool on the stack, and of those a matcher picked.
type ProfileShare struct {
	Samples int64 `json:"samples"`  // samples taken (the profile's count)
	Total   int64 `json:"total_ns"` // CPU time of all of them
	Spool   int64 `json:"spool_ns"` // of those with a frame of package spool
	Match   int64 `json:"match_ns"` // of those the matcher picked
}

// Share is the matched CPU time over all of it, or NaN.
func (p ProfileShare) Share() float64 { return ratio(p.Match, p.Total) }

// SpoolShare is the matched CPU time over that with spool on the stack,
// or NaN.
func (p ProfileShare) SpoolShare() float64 { return ratio(p.Match, p.Spool) }

// spoolPkg prefixes the names of package spool's functions.
const spoolPkg = "github.com/spoolkit/spool."

// spillFileStack reports whether a stack (function names, innermost
// first) is creating or closing one of spool's spill files: the spill
// arena creating a segment ((*arena).pick, which creates one on first use
// of its slot) or closing them ((*arena).close), or any open or close of a
// file called from package spool (os.OpenFile, openat, (*os.File).Close).
func spillFileStack(stack []string) bool {
	inSpool, fileOp := false, false
	for _, f := range stack {
		switch f {
		case spoolPkg + "(*arena).pick", spoolPkg + "(*arena).close":
			return true
		case "os.OpenFile", "os.openFileNolog", "syscall.openat", "syscall.Open", "golang.org/x/sys/unix.openat", "golang.org/x/sys/unix.Open",
			"os.(*File).Close", "os.(*file).close":
			fileOp = true
		}
		inSpool = inSpool || strings.HasPrefix(f, spoolPkg)
	}
	return inSpool && fileOp
}

// readCPUShare reads the CPU profile at path and measures it with match.
func readCPUShare(path string, match func(stack []string) bool) (ProfileShare, error) {
	p, err := readProfile(path)
	if err != nil {
		return ProfileShare{}, err
	}
	return p.share(match), nil
}

// readProfile reads and decodes the gzipped profile at path.
func readProfile(path string) (*profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p, err := parseProfile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// profile is what parseProfile keeps of a profile.proto message.
type profile struct {
	valueIndex int                 // of the CPU time (or delay) in each sample's values
	countIndex int                 // of the number of samples taken (or contentions), or -1
	samples    []profileSample     //
	locations  map[uint64][]uint64 // location ID: function IDs, innermost (inlined) first
	functions  map[uint64]int64    // function ID: index of its name in strings
	strings    []string
	types      []int64 // sample_type: index of each value type's name
}

type profileSample struct {
	locations []uint64 // innermost first
	values    []int64
}

// each calls f with the stack of each sample of p (function names,
// innermost first; f must not keep it), its value (CPU time, or delay)
// and its count (samples taken, or contentions).
func (p *profile) each(f func(stack []string, value, count int64)) {
	var stack []string
	for _, smp := range p.samples {
		if p.valueIndex >= len(smp.values) {
			continue
		}
		stack = stack[:0]
		for _, loc := range smp.locations {
			for _, fn := range p.locations[loc] {
				if i := p.functions[fn]; i >= 0 && i < int64(len(p.strings)) {
					stack = append(stack, p.strings[i])
				}
			}
		}
		count := int64(1)
		if p.countIndex >= 0 && p.countIndex < len(smp.values) {
			count = smp.values[p.countIndex]
		}
		f(stack, smp.values[p.valueIndex], count)
	}
}

// share sums the CPU time of p's samples, as ProfileShare says.
func (p *profile) share(match func([]string) bool) ProfileShare {
	var s ProfileShare
	p.each(func(stack []string, v, count int64) {
		s.Samples += count
		s.Total += v
		for _, f := range stack {
			if strings.HasPrefix(f, spoolPkg) {
				s.Spool += v
				break
			}
		}
		if match(stack) {
			s.Match += v
		}
	})
	return s
}

// parseProfile decodes the fields of a profile.proto message that
// profile keeps. The CPU time is the value of type "cpu" (nanoseconds,
// as runtime/pprof writes it), or in a mutex profile the delay ("delay",
// nanoseconds), or else the last value; the count of samples taken that
// of type "samples", or in a mutex profile the contentions
// ("contentions").
func parseProfile(data []byte) (*profile, error) {
	p := &profile{locations: make(map[uint64][]uint64), functions: make(map[uint64]int64)}
	err := eachField(data, func(num int, wire int, v uint64, b []byte) error {
		switch num {
		case 1: // sample_type: ValueType{type = 1, unit = 2}
			var typ int64
			err := eachField(b, func(num, _ int, v uint64, _ []byte) error {
				if num == 1 {
					typ = int64(v)
				}
				return nil
			})
			p.types = append(p.types, typ)
			return err
		case 2: // sample: Sample{location_id = 1, value = 2}
			var s profileSample
			err := eachField(b, func(num, wire int, v uint64, b []byte) error {
				switch num {
				case 1:
					return eachUint(wire, v, b, func(x uint64) { s.locations = append(s.locations, x) })
				case 2:
					return eachUint(wire, v, b, func(x uint64) { s.values = append(s.values, int64(x)) })
				}
				return nil
			})
			p.samples = append(p.samples, s)
			return err
		case 4: // location: Location{id = 1, line = 4: Line{function_id = 1}}
			var id uint64
			var fns []uint64
			err := eachField(b, func(num, _ int, v uint64, b []byte) error {
				switch num {
				case 1:
					id = v
				case 4:
					return eachField(b, func(num, _ int, v uint64, _ []byte) error {
						if num == 1 {
							fns = append(fns, v)
						}
						return nil
					})
				}
				return nil
			})
			p.locations[id] = fns
			return err
		case 5: // function: Function{id = 1, name = 2}
			var id uint64
			var name int64 = -1
			err := eachField(b, func(num, _ int, v uint64, _ []byte) error {
				switch num {
				case 1:
					id = v
				case 2:
					name = int64(v)
				}
				return nil
			})
			p.functions[id] = name
			return err
		case 6: // string_table
			p.strings = append(p.strings, string(b))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(p.types) == 0 {
		return nil, errors.New("profile has no sample types")
	}
	p.valueIndex, p.countIndex = len(p.types)-1, -1
	for i, t := range p.types {
		if t < 0 || t >= int64(len(p.strings)) {
			continue
		}
		switch p.strings[t] {
		case "cpu", "delay":
			p.valueIndex = i
		case "samples", "contentions":
			p.countIndex = i
		}
	}
	return p, nil
}

// errProto is returned for a message that does not decode.
var errProto = errors.New("malformed profile")

// eachField calls f with each field of the protocol buffer message data:
// its number, wire type, and value (varint and fixed types) or bytes
// (length-delimited).
func eachField(data []byte, f func(num, wire int, v uint64, b []byte) error) error {
	for len(data) > 0 {
		key, n := binary.Uvarint(data)
		if n <= 0 {
			return errProto
		}
		data = data[n:]
		num, wire := int(key>>3), int(key&7)
		var v uint64
		var b []byte
		switch wire {
		case 0: // varint
			v, n = binary.Uvarint(data)
			if n <= 0 {
				return errProto
			}
			data = data[n:]
		case 1: // fixed64
			if len(data) < 8 {
				return errProto
			}
			v, data = binary.LittleEndian.Uint64(data), data[8:]
		case 2: // length-delimited
			l, n := binary.Uvarint(data)
			if n <= 0 || l > uint64(len(data)-n) {
				return errProto
			}
			b, data = data[n:n+int(l)], data[n+int(l):]
		case 5: // fixed32
			if len(data) < 4 {
				return errProto
			}
			v, data = uint64(binary.LittleEndian.Uint32(data)), data[4:]
		default:
			return errProto
		}
		if err := f(num, wire, v, b); err != nil {
			return err
		}
	}
	return nil
}

// eachUint calls f with each value of a repeated integer field: one
// varint, or a packed run of them (runtime/pprof writes both).
func eachUint(wire int, v uint64, b []byte, f func(uint64)) error {
	if wire != 2 {
		f(v)
		return nil
	}
	r := bytes.NewReader(b)
	for r.Len() > 0 {
		x, err := binary.ReadUvarint(r)
		if err != nil {
			return errProto
		}
		f(x)
	}
	return nil
}
