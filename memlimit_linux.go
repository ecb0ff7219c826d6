package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// The cgroup memory limit, found as the Go runtime finds the CPU limit for
// GOMAXPROCS (internal/runtime/cgroup): /proc/self/cgroup names the
// process's cgroup, /proc/self/mountinfo the mount of the cgroup file
// system that holds it, and the limit is a file in the cgroup's directory
// there. See cgroups(7), proc_pid_cgroup(5), proc_pid_mountinfo(5), and the
// kernel's admin-guide/cgroup-v2.rst and cgroup-v1/memory.rst.

// unlimitedCgroup: a cgroup memory limit at or above it means none. cgroup
// v1 shows "no limit" as the largest page-aligned int64
// (9223372036854771712 with 4 KiB pages, less with larger pages); no
// machine has 2^62 bytes.
const unlimitedCgroup = 1 << 62

// cgroupLimit returns the memory limit of the process's cgroup, or
// ErrNoMemoryLimit.
func cgroupLimit() (int64, string, error) { return readCgroupLimit("/") }

// readCgroupLimit returns the memory limit of the process's cgroup and the
// file it came from, reading root+"/proc/self/cgroup",
// root+"/proc/self/mountinfo" and the cgroup files under root+mount point,
// so that tests can give it a tree of their own. It returns
// ErrNoMemoryLimit if the process is in no cgroup with a memory limit,
// or if any of those files is missing.
func readCgroupLimit(root string) (int64, string, error) {
	const procCgroup, procMountinfo = "/proc/self/cgroup", "/proc/self/mountinfo"
	data, err := os.ReadFile(filepath.Join(root, procCgroup))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, "", ErrNoMemoryLimit
	}
	if err != nil {
		return 0, "", fmt.Errorf("spool: cgroup memory limit: %w", err)
	}
	version, cgroup, err := parseProcCgroup(string(data))
	if err != nil {
		return 0, "", fmt.Errorf("spool: cgroup memory limit: %s %w", procCgroup, err)
	}
	if version == 0 {
		return 0, "", ErrNoMemoryLimit
	}
	data, err = os.ReadFile(filepath.Join(root, procMountinfo))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, "", ErrNoMemoryLimit
	}
	if err != nil {
		return 0, "", fmt.Errorf("spool: cgroup memory limit: %w", err)
	}
	mnt, rel, err := findCgroupMount(string(data), version, cgroup)
	if err != nil {
		return 0, "", fmt.Errorf("spool: cgroup memory limit: %s %w", procMountinfo, err)
	}
	if mnt == "" {
		return 0, "", ErrNoMemoryLimit
	}
	name, label := "memory.max", "cgroup v2 "
	if version == 1 {
		name, label = "memory.limit_in_bytes", "cgroup v1 "
	}
	// The cgroup's own limit, then each ancestor's up to the mount's root:
	// a parent's limit binds its children too, and a child's may be set
	// higher than its parent's. The root cgroup has no memory.max, and the
	// cgroup's own may be missing when its parent does not enable the
	// memory controller for its children: a missing file is no limit.
	limit, source := int64(-1), ""
	for dir := rel; ; dir = path.Dir(dir) {
		file := filepath.Join(root, mnt, filepath.FromSlash(dir), name)
		n, ok, err := readCgroupFile(file)
		if err != nil {
			return 0, "", fmt.Errorf("spool: cgroup memory limit: %w", err)
		}
		if ok && (limit < 0 || n < limit) {
			limit, source = n, label+file
		}
		if dir == "/" {
			break
		}
	}
	if limit < 0 {
		return 0, "", ErrNoMemoryLimit
	}
	return limit, source, nil
}

// parseProcCgroup returns the cgroup version (1 or 2) that holds the
// memory controller of the process and the path of its cgroup, from the
// contents of /proc/self/cgroup, or version 0 if there is none. Each line
// is hierarchy-ID:controller-list:cgroup-path; cgroup v2 is the line of
// hierarchy 0, and a v1 hierarchy whose comma-separated controller list
// holds "memory" takes precedence over it (a controller is in one
// hierarchy only: in systemd's hybrid layout the v2 hierarchy has none).
func parseProcCgroup(data string) (version int, cgroup string, err error) {
	for i, line := range strings.Split(data, "\n") {
		if line == "" {
			continue
		}
		// The path may hold colons; the other two fields cannot.
		fields := strings.SplitN(line, ":", 3)
		if len(fields) != 3 || !strings.HasPrefix(fields[2], "/") {
			return 0, "", fmt.Errorf("line %d: %q: %w", i+1, line, strconv.ErrSyntax)
		}
		if fields[0] == "0" && fields[1] == "" {
			version, cgroup = 2, fields[2] // a v1 memory line may follow
			continue
		}
		for c := range strings.SplitSeq(fields[1], ",") {
			if c == "memory" {
				return 1, fields[2], nil
			}
		}
	}
	return version, cgroup, nil
}

// findCgroupMount returns the mount point of the cgroup file system of
// version that holds cgroup, and the path of cgroup below the mount's root
// ("/" for the root itself), from the contents of /proc/self/mountinfo.
// It returns mnt "" if no mount can reach the cgroup. As the Go runtime
// does, it takes the first mount that fits: file system type cgroup2 for
// version 2, or cgroup with "memory" among its super options for version
// 1, whose root (a cgroup namespace, or a bind mount, shows only a
// subtree) holds the cgroup.
//
// Each line is
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//	(1)(2)(3)   (4)   (5)      (6)      (7)   (8) (9)   (10)         (11)
//
// with (4) the root of the mount within its file system, (5) the mount
// point, (7) zero or more optional fields ended by the separator (8) "-",
// (9) the file system type and (11) the super options. Spaces, tabs,
// newlines and backslashes in paths are escaped as \ and three octal
// digits (\040 for a space).
func findCgroupMount(data string, version int, cgroup string) (mnt, rel string, err error) {
	for i, line := range strings.Split(data, "\n") {
		if line == "" {
			continue
		}
		bad := func(why string) (string, string, error) {
			return "", "", fmt.Errorf("line %d: %s: %q: %w", i+1, why, line, strconv.ErrSyntax)
		}
		fields := strings.Split(line, " ")
		sep := 6
		for sep < len(fields) && fields[sep] != "-" {
			sep++
		}
		if sep+3 >= len(fields) {
			return bad("too few fields")
		}
		fstype, super := fields[sep+1], fields[sep+3]
		switch {
		case version == 2 && fstype == "cgroup2":
		case version == 1 && fstype == "cgroup" && hasOption(super, "memory"):
		default:
			continue
		}
		mroot, ok := unescapeMountPath(fields[3])
		if !ok || !strings.HasPrefix(mroot, "/") {
			return bad("bad root")
		}
		point, ok := unescapeMountPath(fields[4])
		if !ok || !strings.HasPrefix(point, "/") {
			return bad("bad mount point")
		}
		if !hasPathPrefix(cgroup, mroot) {
			continue // the mount shows another subtree
		}
		rel := cgroup
		if mroot != "/" {
			rel = cgroup[len(mroot):]
		}
		if hasPathPrefix(rel, "/..") {
			// The cgroup is outside the process's cgroup namespace
			// (/proc/self/cgroup shows /../x), out of reach of a mount
			// of the namespace's root.
			continue
		}
		return point, path.Clean("/" + rel), nil
	}
	return "", "", nil
}

// hasOption reports whether the comma-separated list opts holds opt.
func hasOption(opts, opt string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

// hasPathPrefix reports whether the slash-separated path p is prefix or
// lies below it.
func hasPathPrefix(p, prefix string) bool {
	if prefix == "/" {
		return strings.HasPrefix(p, "/")
	}
	rest, ok := strings.CutPrefix(p, prefix)
	return ok && (rest == "" || rest[0] == '/')
}

// unescapeMountPath undoes the escapes of paths in /proc/self/mountinfo:
// a backslash and three octal digits stand for one byte. It reports false
// for a malformed escape.
func unescapeMountPath(s string) (string, bool) {
	if !strings.Contains(s, `\`) {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+3 >= len(s) {
			return "", false
		}
		n, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(n))
		i += 3
	}
	return b.String(), true
}

// readCgroupFile reads the memory limit in file (memory.max or
// memory.limit_in_bytes): a number of bytes, or "max". ok is false for no
// limit: "max", a number at or above unlimitedCgroup, or no file.
func readCgroupFile(file string) (limit int64, ok bool, err error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	s := strings.TrimSpace(string(data))
	if s == "max" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", file, err)
	}
	if n >= unlimitedCgroup {
		return 0, false, nil
	}
	return int64(n), true, nil
}
