//go:build linux

package spool

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Lines of /proc/self/mountinfo for the fake trees.
const (
	rootMount    = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
	v2Mount      = "30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
	v1TmpfsMount = "31 22 0:27 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:5 - tmpfs tmpfs ro,mode=755\n"
	v1CPUMount   = "32 31 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
	v1MemMount   = "35 31 0:32 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory\n"
	unifiedMount = "41 31 0:38 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate\n"
)

// v1Unlimited is what cgroup v1 shows for no limit with 4 KiB pages.
const v1Unlimited = "9223372036854771712\n"

// cgroupTree writes files (path under the root: contents) into a new
// directory and returns it. A contents of "<dir>" makes a directory.
func cgroupTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, data := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if data == "<dir>" {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestCgroupLimit reads the limit from fake trees of every layout:
// the limit, the file it comes from, or ErrNoMemoryLimit.
func TestCgroupLimit(t *testing.T) {
	const gib = 1 << 30
	tests := []struct {
		name  string
		files map[string]string
		want  int64
		from  string // the file of the limit, under the root, "cgroup vN "
	}{
		{
			name: "v2",
			files: map[string]string{
				"proc/self/cgroup":                               "0::/app.slice/svc.service\n",
				"proc/self/mountinfo":                            rootMount + v2Mount,
				"sys/fs/cgroup/app.slice/svc.service/memory.max": "536870912\n",
				"sys/fs/cgroup/app.slice/memory.max":             "max\n",
			},
			want: 512 << 20,
			from: "cgroup v2 /sys/fs/cgroup/app.slice/svc.service/memory.max",
		},
		{
			name: "v2 max",
			files: map[string]string{
				"proc/self/cgroup":                               "0::/app.slice/svc.service\n",
				"proc/self/mountinfo":                            rootMount + v2Mount,
				"sys/fs/cgroup/app.slice/svc.service/memory.max": "max\n",
				"sys/fs/cgroup/app.slice/memory.max":             "max\n",
			},
			want: -1,
		},
		{
			name: "v2 parent smaller",
			files: map[string]string{
				"proc/self/cgroup":                               "0::/app.slice/svc.service\n",
				"proc/self/mountinfo":                            rootMount + v2Mount,
				"sys/fs/cgroup/app.slice/svc.service/memory.max": "1073741824\n",
				"sys/fs/cgroup/app.slice/memory.max":             "268435456\n",
			},
			want: 256 << 20,
			from: "cgroup v2 /sys/fs/cgroup/app.slice/memory.max",
		},
		{
			name: "v2 nested, mount root smallest",
			files: map[string]string{
				"proc/self/cgroup":                 "0::/a/b/c\n",
				"proc/self/mountinfo":              rootMount + v2Mount,
				"sys/fs/cgroup/a/b/c/memory.max":   "104857600\n",
				"sys/fs/cgroup/a/b/memory.max":     "max\n",
				"sys/fs/cgroup/a/memory.max":       "209715200\n",
				"sys/fs/cgroup/memory.max":         "1\n", // the mount root is walked too
				"sys/fs/cgroup/a/b/c/d/memory.max": "1\n", // a child: not read
			},
			want: 1,
			from: "cgroup v2 /sys/fs/cgroup/memory.max",
		},
		{
			name: "v2 nested, no limit at the root",
			files: map[string]string{
				"proc/self/cgroup":                 "0::/a/b/c\n",
				"proc/self/mountinfo":              rootMount + v2Mount,
				"sys/fs/cgroup/a/b/c/memory.max":   "104857600\n",
				"sys/fs/cgroup/a/b/memory.max":     "max\n",
				"sys/fs/cgroup/a/memory.max":       "209715200\n",
				"sys/fs/cgroup/a/b/c/d/memory.max": "1\n", // a child: not read
			},
			want: 100 << 20,
			from: "cgroup v2 /sys/fs/cgroup/a/b/c/memory.max",
		},
		{
			name: "v2 own file missing",
			files: map[string]string{
				"proc/self/cgroup":                    "0::/app.slice/svc.service\n",
				"proc/self/mountinfo":                 rootMount + v2Mount,
				"sys/fs/cgroup/app.slice/svc.service": "<dir>",
				"sys/fs/cgroup/app.slice/memory.max":  "268435456\n",
			},
			want: 256 << 20,
			from: "cgroup v2 /sys/fs/cgroup/app.slice/memory.max",
		},
		{
			name: "v2 cgroup namespace",
			files: map[string]string{
				"proc/self/cgroup":         "0::/\n",
				"proc/self/mountinfo":      rootMount + v2Mount,
				"sys/fs/cgroup/memory.max": "1073741824\n",
			},
			want: gib,
			from: "cgroup v2 /sys/fs/cgroup/memory.max",
		},
		{
			name: "v2 mount of a subtree",
			files: map[string]string{
				"proc/self/cgroup":                             "0::/kubepods/pod1/ctr\n",
				"proc/self/mountinfo":                          rootMount + strings.Replace(v2Mount, " / ", " /kubepods/pod1 ", 1),
				"sys/fs/cgroup/ctr/memory.max":                 "314572800\n",
				"sys/fs/cgroup/memory.max":                     "209715200\n",
				"sys/fs/cgroup/kubepods/pod1/ctr/memory.max":   "1\n", // not the cgroup's path
				"sys/fs/cgroup/kubepods/pod1/memory.max":       "1\n",
				"sys/fs/cgroup/kubepods/memory.max":            "1\n",
				"sys/fs/cgroup/kubepods/pod1/ctr/x/memory.max": "1\n",
			},
			want: 200 << 20,
			from: "cgroup v2 /sys/fs/cgroup/memory.max",
		},
		{
			name: "v2 mount of another subtree",
			files: map[string]string{
				"proc/self/cgroup":         "0::/kubepods/pod1/ctr\n",
				"proc/self/mountinfo":      rootMount + strings.Replace(v2Mount, " / ", " /kubepods/pod2 ", 1),
				"sys/fs/cgroup/memory.max": "1\n",
			},
			want: -1,
		},
		{
			name: "v2 mount of a sibling with a common prefix",
			files: map[string]string{
				"proc/self/cgroup":           "0::/kubepods/pod10/ctr\n",
				"proc/self/mountinfo":        rootMount + strings.Replace(v2Mount, " / ", " /kubepods/pod1 ", 1),
				"sys/fs/cgroup/memory.max":   "1\n",
				"sys/fs/cgroup/0/memory.max": "1\n",
			},
			want: -1,
		},
		{
			name: "v2 cgroup outside the namespace",
			files: map[string]string{
				"proc/self/cgroup":                    "0::/../../init.scope\n",
				"proc/self/mountinfo":                 rootMount + v2Mount,
				"sys/fs/cgroup/memory.max":            "1\n",
				"sys/fs/cgroup/init.scope/memory.max": "1\n",
			},
			want: -1,
		},
		{
			name: "v2 path with colons and spaces",
			files: map[string]string{
				"proc/self/cgroup":                 "0::/a:b c/d\n",
				"proc/self/mountinfo":              rootMount + v2Mount,
				"sys/fs/cgroup/a:b c/d/memory.max": "4096\n",
			},
			want: 4096,
			from: "cgroup v2 /sys/fs/cgroup/a:b c/d/memory.max",
		},
		{
			name: "v2 escaped mount point and root",
			files: map[string]string{
				"proc/self/cgroup": "0::/my pods/p\\1/ctr\n",
				"proc/self/mountinfo": rootMount +
					`30 22 0:26 /my\040pods/p\1341 /run/my\040cgroup\011fs rw shared:4 - cgroup2 cgroup2 rw` + "\n",
				"run/my cgroup\tfs/ctr/memory.max": "8192\n",
				"run/my cgroup\tfs/memory.max":     "16384\n",
			},
			want: 8192,
			from: "cgroup v2 /run/my cgroup\tfs/ctr/memory.max",
		},
		{
			name: "v1",
			files: map[string]string{
				"proc/self/cgroup":    "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n1:name=systemd:/docker/abc\n",
				"proc/self/mountinfo": rootMount + v1TmpfsMount + v1CPUMount + v1MemMount,
				"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes":      "2147483648\n",
				"sys/fs/cgroup/memory/docker/memory.limit_in_bytes":          v1Unlimited,
				"sys/fs/cgroup/memory/memory.limit_in_bytes":                 v1Unlimited,
				"sys/fs/cgroup/cpu,cpuacct/docker/abc/memory.limit_in_bytes": "1\n",
			},
			want: 2 * gib,
			from: "cgroup v1 /sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
		},
		{
			name: "v1 parent smaller",
			files: map[string]string{
				"proc/self/cgroup":    "4:memory:/docker/abc\n",
				"proc/self/mountinfo": rootMount + v1TmpfsMount + v1MemMount,
				"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "2147483648\n",
				"sys/fs/cgroup/memory/docker/memory.limit_in_bytes":     "1073741824\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes":            v1Unlimited,
			},
			want: gib,
			from: "cgroup v1 /sys/fs/cgroup/memory/docker/memory.limit_in_bytes",
		},
		{
			name: "v1 controller list",
			files: map[string]string{
				"proc/self/cgroup":                               "3:hugetlb,memory:/job\n",
				"proc/self/mountinfo":                            rootMount + strings.Replace(v1MemMount, "rw,memory", "rw,hugetlb,memory", 1),
				"sys/fs/cgroup/memory/job/memory.limit_in_bytes": "4096\n",
			},
			want: 4096,
			from: "cgroup v1 /sys/fs/cgroup/memory/job/memory.limit_in_bytes",
		},
		{
			name: "v1 docker without a cgroup namespace",
			files: map[string]string{
				"proc/self/cgroup":                           "4:memory:/docker/abc\n",
				"proc/self/mountinfo":                        rootMount + v1TmpfsMount + strings.Replace(v1MemMount, " / ", " /docker/abc ", 1),
				"sys/fs/cgroup/memory/memory.limit_in_bytes": "2147483648\n",
			},
			want: 2 * gib,
			from: "cgroup v1 /sys/fs/cgroup/memory/memory.limit_in_bytes",
		},
		{
			name: "v1 unlimited",
			files: map[string]string{
				"proc/self/cgroup":    "4:memory:/docker/abc\n",
				"proc/self/mountinfo": rootMount + v1TmpfsMount + v1MemMount,
				"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": v1Unlimited,
				"sys/fs/cgroup/memory/docker/memory.limit_in_bytes":     "9223372036854710272\n", // 64 KiB pages
				"sys/fs/cgroup/memory/memory.limit_in_bytes":            "18446744073709551615\n",
			},
			want: -1,
		},
		{
			name: "v1 memory controller not mounted",
			files: map[string]string{
				"proc/self/cgroup":    "4:memory:/docker/abc\n",
				"proc/self/mountinfo": rootMount + v1TmpfsMount + v1CPUMount + strings.Replace(v1MemMount, "rw,memory", "rw,name=memory", 1),
				"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "1\n",
			},
			want: -1,
		},
		{
			name: "hybrid: v1 memory, v2 without it",
			files: map[string]string{
				"proc/self/cgroup":                                      "0::/user.slice\n4:memory:/user.slice\n1:name=systemd:/user.slice\n",
				"proc/self/mountinfo":                                   rootMount + v1TmpfsMount + unifiedMount + v1MemMount,
				"sys/fs/cgroup/unified/user.slice/memory.max":           "1\n", // no memory controller in v2
				"sys/fs/cgroup/memory/user.slice/memory.limit_in_bytes": "3221225472\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes":            v1Unlimited,
			},
			want: 3 * gib,
			from: "cgroup v1 /sys/fs/cgroup/memory/user.slice/memory.limit_in_bytes",
		},
		{
			name: "hybrid, v1 memory line last",
			files: map[string]string{
				"proc/self/cgroup":                                      "4:memory:/user.slice\n0::/user.slice\n",
				"proc/self/mountinfo":                                   rootMount + v1TmpfsMount + unifiedMount + v1MemMount,
				"sys/fs/cgroup/unified/user.slice/memory.max":           "1\n",
				"sys/fs/cgroup/memory/user.slice/memory.limit_in_bytes": "3221225472\n",
			},
			want: 3 * gib,
			from: "cgroup v1 /sys/fs/cgroup/memory/user.slice/memory.limit_in_bytes",
		},
		{
			name: "v2 unified mount of a hybrid layout",
			files: map[string]string{
				"proc/self/cgroup":                            "0::/user.slice\n1:name=systemd:/user.slice\n",
				"proc/self/mountinfo":                         rootMount + v1TmpfsMount + unifiedMount,
				"sys/fs/cgroup/unified/user.slice/memory.max": "65536\n",
			},
			want: 64 << 10,
			from: "cgroup v2 /sys/fs/cgroup/unified/user.slice/memory.max",
		},
		{
			name:  "no cgroup file system",
			files: map[string]string{},
			want:  -1,
		},
		{
			name: "no mountinfo",
			files: map[string]string{
				"proc/self/cgroup":         "0::/\n",
				"sys/fs/cgroup/memory.max": "1\n",
			},
			want: -1,
		},
		{
			name: "no cgroup mount",
			files: map[string]string{
				"proc/self/cgroup":         "0::/\n",
				"proc/self/mountinfo":      rootMount,
				"sys/fs/cgroup/memory.max": "1\n",
			},
			want: -1,
		},
		{
			name: "no files under the mount",
			files: map[string]string{
				"proc/self/cgroup":    "0::/a/b\n",
				"proc/self/mountinfo": rootMount + v2Mount,
			},
			want: -1,
		},
		{
			name: "v1 without memory, no v2",
			files: map[string]string{
				"proc/self/cgroup":    "5:cpu,cpuacct:/\n1:name=systemd:/\n",
				"proc/self/mountinfo": rootMount + v1TmpfsMount + v1CPUMount,
				"sys/fs/cgroup/cpu,cpuacct/memory.limit_in_bytes": "1\n",
			},
			want: -1,
		},
		{
			name: "empty /proc/self/cgroup",
			files: map[string]string{
				"proc/self/cgroup":    "",
				"proc/self/mountinfo": rootMount + v2Mount,
			},
			want: -1,
		},
		{
			name: "zero",
			files: map[string]string{
				"proc/self/cgroup":         "0::/\n",
				"proc/self/mountinfo":      rootMount + v2Mount,
				"sys/fs/cgroup/memory.max": "0\n",
			},
			want: 0,
			from: "cgroup v2 /sys/fs/cgroup/memory.max",
		},
		{
			name: "largest limit",
			files: map[string]string{
				"proc/self/cgroup":         "0::/\n",
				"proc/self/mountinfo":      rootMount + v2Mount,
				"sys/fs/cgroup/memory.max": strconv.FormatInt(unlimitedCgroup-4096, 10) + "\n",
			},
			want: unlimitedCgroup - 4096,
			from: "cgroup v2 /sys/fs/cgroup/memory.max",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := cgroupTree(t, tt.files)
			limit, source, err := readCgroupLimit(root)
			if tt.want < 0 {
				if !errors.Is(err, ErrNoMemoryLimit) || limit != 0 || source != "" {
					t.Fatalf("readCgroupLimit = %d, %q, %v; want ErrNoMemoryLimit", limit, source, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("readCgroupLimit: %v", err)
			}
			version, file, _ := strings.Cut(tt.from, " /")
			if want := version + " " + filepath.Join(root, file); limit != tt.want || source != want {
				t.Errorf("readCgroupLimit = %d, %q; want %d, %q", limit, source, tt.want, want)
			}
		})
	}
}

// TestCgroupLimitGarbage: contents that are not what the kernel writes
// give an error that names the file and wraps strconv.ErrSyntax (or
// ErrRange), never a panic, never ErrNoMemoryLimit; a limit file that
// cannot be read gives the *fs.PathError.
func TestCgroupLimitGarbage(t *testing.T) {
	v2 := func(cgroup, mountinfo, limit string) map[string]string {
		return map[string]string{
			"proc/self/cgroup":               cgroup,
			"proc/self/mountinfo":            mountinfo,
			"sys/fs/cgroup/app/memory.max":   limit,
			"sys/fs/cgroup/memory.max":       "max\n",
			"sys/fs/cgroup/other/memory.max": "\x00garbage",
		}
	}
	tests := []struct {
		name  string
		files map[string]string
		want  error
		in    string // in the message
	}{
		{"cgroup line without colons", v2("garbage\n", v2Mount, "max\n"), strconv.ErrSyntax, "/proc/self/cgroup line 1"},
		{"cgroup relative path", v2("1:cpu:/\n0::app\n", v2Mount, "max\n"), strconv.ErrSyntax, "/proc/self/cgroup line 2"},
		{"cgroup binary", v2("\x00\xff\xfe", v2Mount, "max\n"), strconv.ErrSyntax, "/proc/self/cgroup"},
		{"mountinfo short line", v2("0::/app\n", rootMount+"1 2 3\n"+v2Mount, "max\n"), strconv.ErrSyntax, "/proc/self/mountinfo line 2"},
		{"mountinfo no separator", v2("0::/app\n", "30 22 0:26 / /sys/fs/cgroup rw shared:4 cgroup2 cgroup2 rw\n", "max\n"), strconv.ErrSyntax, "/proc/self/mountinfo line 1"},
		{"mountinfo nothing after separator", v2("0::/app\n", "30 22 0:26 / /sys/fs/cgroup rw - cgroup2\n", "max\n"), strconv.ErrSyntax, "too few fields"},
		{"mountinfo bad escape", v2("0::/app\n", strings.Replace(v2Mount, "/sys/fs/cgroup", `/sys/fs/\04x`, 1), "max\n"), strconv.ErrSyntax, "bad mount point"},
		{"mountinfo escape too large", v2("0::/app\n", strings.Replace(v2Mount, "/sys/fs/cgroup", `/sys/fs/\777`, 1), "max\n"), strconv.ErrSyntax, "bad mount point"},
		{"mountinfo cut escape", v2("0::/app\n", strings.Replace(v2Mount, " / ", ` /a\04 `, 1), "max\n"), strconv.ErrSyntax, "bad root"},
		{"mountinfo relative root", v2("0::/app\n", strings.Replace(v2Mount, " / ", " app ", 1), "max\n"), strconv.ErrSyntax, "bad root"},
		{"limit word", v2("0::/app\n", v2Mount, "lots\n"), strconv.ErrSyntax, "/sys/fs/cgroup/app/memory.max"},
		{"limit empty", v2("0::/app\n", v2Mount, ""), strconv.ErrSyntax, "/sys/fs/cgroup/app/memory.max"},
		{"limit negative", v2("0::/app\n", v2Mount, "-1\n"), strconv.ErrSyntax, "memory.max"},
		{"limit with unit", v2("0::/app\n", v2Mount, "512M\n"), strconv.ErrSyntax, "memory.max"},
		{"limit binary", v2("0::/app\n", v2Mount, "\x00\xff"), strconv.ErrSyntax, "memory.max"},
		{"limit two lines", v2("0::/app\n", v2Mount, "1\n2\n"), strconv.ErrSyntax, "memory.max"},
		{"limit past uint64", v2("0::/app\n", v2Mount, "99999999999999999999999\n"), strconv.ErrRange, "memory.max"},
		{"limit of a parent", v2("0::/other/app\n", v2Mount, "max\n"), strconv.ErrSyntax, "/sys/fs/cgroup/other/memory.max"},
		{"limit is a directory", v2("0::/app\n", v2Mount, "<dir>"), fs.ErrInvalid, "memory.max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			limit, source, err := readCgroupLimit(cgroupTree(t, tt.files))
			if err == nil || errors.Is(err, ErrNoMemoryLimit) || limit != 0 || source != "" {
				t.Fatalf("readCgroupLimit = %d, %q, %v; want an error", limit, source, err)
			}
			if tt.want == fs.ErrInvalid {
				var pe *fs.PathError
				if !errors.As(err, &pe) {
					t.Errorf("readCgroupLimit: %v; want an *fs.PathError", err)
				}
			} else if !errors.Is(err, tt.want) {
				t.Errorf("readCgroupLimit: %v; want an error wrapping %v", err, tt.want)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "spool: cgroup memory limit: ") || !strings.Contains(msg, tt.in) {
				t.Errorf("readCgroupLimit: %q; want it prefixed by spool and to name %q", msg, tt.in)
			}
		})
	}
}

// FuzzCgroupParse: the parsers of /proc/self/cgroup and mountinfo never
// panic, and a mount they find is absolute, with a clean path below it
// that cannot climb out of it.
func FuzzCgroupParse(f *testing.F) {
	f.Add("0::/app.slice/svc.service\n", rootMount+v2Mount)
	f.Add("4:memory:/docker/abc\n0::/\n", v1TmpfsMount+v1MemMount+unifiedMount)
	f.Add("0::/a/../../b\n", strings.Replace(v2Mount, " / ", ` /a\040b `, 1))
	f.Add("0::/../x\n", v2Mount)
	f.Add("0::\n", "1 2 3 4 5 6 - cgroup2 x y\n")
	f.Add(":::\n", "1 2 3 / / 6 - - - -\n")
	f.Fuzz(func(t *testing.T, cgroupData, mountinfo string) {
		version, cgroup, err := parseProcCgroup(cgroupData)
		if err != nil || version == 0 {
			return
		}
		if !strings.HasPrefix(cgroup, "/") {
			t.Fatalf("parseProcCgroup(%q) = %d, %q: not absolute", cgroupData, version, cgroup)
		}
		mnt, rel, err := findCgroupMount(mountinfo, version, cgroup)
		if err != nil || mnt == "" {
			return
		}
		if !strings.HasPrefix(mnt, "/") || rel != path.Clean(rel) || !strings.HasPrefix(rel, "/") {
			t.Fatalf("findCgroupMount(%q, %d, %q) = %q, %q", mountinfo, version, cgroup, mnt, rel)
		}
	})
}

// TestMemoryLimitCombine: MemoryLimit takes the smaller of the cgroup
// limit and the runtime's (GOMEMLIMIT), through the seam that takes the
// runtime limit as an argument, so the process's own limit is untouched.
func TestMemoryLimitCombine(t *testing.T) {
	t.Parallel()
	limited := cgroupTree(t, map[string]string{
		"proc/self/cgroup":             "0::/app\n",
		"proc/self/mountinfo":          rootMount + v2Mount,
		"sys/fs/cgroup/app/memory.max": "1073741824\n",
	})
	cgSource := "cgroup v2 " + filepath.Join(limited, "sys/fs/cgroup/app/memory.max")
	unlimited := cgroupTree(t, map[string]string{
		"proc/self/cgroup":             "0::/app\n",
		"proc/self/mountinfo":          rootMount + v2Mount,
		"sys/fs/cgroup/app/memory.max": "max\n",
	})
	garbage := cgroupTree(t, map[string]string{
		"proc/self/cgroup":             "0::/app\n",
		"proc/self/mountinfo":          rootMount + v2Mount,
		"sys/fs/cgroup/app/memory.max": "1 GiB\n",
	})
	const none = math.MaxInt64
	tests := []struct {
		name    string
		root    string
		runtime int64
		want    int64
		source  string
		err     error
	}{
		{"cgroup only", limited, none, 1 << 30, cgSource, nil},
		{"GOMEMLIMIT lower", limited, 512 << 20, 512 << 20, "GOMEMLIMIT", nil},
		{"GOMEMLIMIT higher", limited, 2 << 30, 1 << 30, cgSource, nil},
		{"tie", limited, 1 << 30, 1 << 30, cgSource, nil},
		{"GOMEMLIMIT only", unlimited, 512 << 20, 512 << 20, "GOMEMLIMIT", nil},
		{"GOMEMLIMIT just below none", unlimited, none - 1, none - 1, "GOMEMLIMIT", nil},
		{"neither", unlimited, none, 0, "", ErrNoMemoryLimit},
		{"no cgroups, GOMEMLIMIT", t.TempDir(), 1 << 20, 1 << 20, "GOMEMLIMIT", nil},
		{"no cgroups, no GOMEMLIMIT", t.TempDir(), none, 0, "", ErrNoMemoryLimit},
		{"garbage wins over GOMEMLIMIT", garbage, 512 << 20, 0, "", strconv.ErrSyntax},
	}
	for _, tt := range tests {
		l, s, err := readCgroupLimit(tt.root)
		limit, source, err := withRuntimeLimit(l, s, err, tt.runtime)
		if limit != tt.want || source != tt.source || !errors.Is(err, tt.err) {
			t.Errorf("%s: got %d, %q, %v; want %d, %q, %v", tt.name, limit, source, err, tt.want, tt.source, tt.err)
		}
	}
}

// TestMemoryLimitFractionOf: the fraction is rounded down, never 0 (which
// Options.MemoryBudget would read as the default), never above the limit,
// and never overflows near math.MaxInt64.
func TestMemoryLimitFractionOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		limit    int64
		fraction float64
		want     int64
	}{
		{1 << 30, 0.25, 256 << 20},
		{1 << 30, 1, 1 << 30},
		{1000, 0.3333, 333},
		{3, 0.5, 1},
		{1, 1e-9, 1},
		{0, 0.5, 1},
		{0, 1, 1},
		{math.MaxInt64 - 1, 1, math.MaxInt64 - 1},
		{math.MaxInt64 - 1, math.Nextafter(1, 0), math.MaxInt64 - 1023},
		{1<<53 + 1, 1, 1<<53 + 1},
		{1<<53 + 1, math.Nextafter(1, 0), 1<<53 - 1},
	}
	for _, tt := range tests {
		got := fractionOf(tt.limit, tt.fraction)
		if got != tt.want || got < 1 || (tt.limit > 0 && got > tt.limit) {
			t.Errorf("fractionOf(%d, %v) = %d; want %d", tt.limit, tt.fraction, got, tt.want)
		}
	}
}
