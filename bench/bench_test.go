package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// tinyConfig is a workload that takes milliseconds: 8 clients, about
// 4 MiB of uploads from 1 byte to 1 MiB (so sizes that are not a multiple
// of the piece or of 8 occur), and a spool budget of 4 chunks, so that
// spool rolls buffers over.
func tinyConfig() Config {
	cfg := defaultConfig()
	cfg.Clients = 8
	cfg.Total = 4 << 20
	cfg.MinSize = 1
	cfg.MaxSize = 1 << 20
	cfg.Budget = 256 << 10
	cfg.TempDir = ""
	return cfg
}

// TestMain lets the test binary act as a bench child process, so that
// TestParentMain exercises the real re-exec protocol. With
// SPOOLBENCH_TEST_CORRUPT=1 the child's spool damages what it reads back.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		if os.Getenv("SPOOLBENCH_TEST_CORRUPT") == "1" {
			for i := range impls {
				open := impls[i].Open
				impls[i].Open = func(cfg Config) (Store, error) {
					s, err := open(cfg)
					return &corruptStore{Store: s, mode: "flip"}, err
				}
			}
		}
		main()
	}
	os.Exit(m.Run())
}

func TestUploadsEveryImpl(t *testing.T) {
	cfg := tinyConfig()
	w := newWorkload(cfg.Seed, cfg.Total, cfg.MinSize, cfg.MaxSize)
	for _, impl := range impls {
		t.Run(impl.Name, func(t *testing.T) {
			cfg.TempDir = t.TempDir()
			ioBefore := readProcIO()
			res, err := runUploads(cfg, impl)
			ioAfter := readProcIO()
			if err != nil {
				t.Fatal(err)
			}
			if p := res.problem(); p != "" {
				t.Fatal(p)
			}
			if res.Uploads != len(w.Uploads) || res.Bytes != w.Total {
				t.Fatalf("%d uploads, %d bytes; want %d, %d", res.Uploads, res.Bytes, len(w.Uploads), w.Total)
			}
			st := res.Store
			switch impl.Name {
			case "bytes":
				if st.DiskBytes != 0 || st.Files != 0 {
					t.Errorf("bytes.Buffer wrote %d bytes to %d files", st.DiskBytes, st.Files)
				}
			case "tempfile":
				if st.DiskBytes != w.Total || st.Files != int64(len(w.Uploads)) {
					t.Errorf("tempfile: %d bytes in %d files, want %d in %d", st.DiskBytes, st.Files, w.Total, len(w.Uploads))
				}
			case "spool":
				if st.Spills == 0 || st.Files != st.Spills {
					t.Errorf("spool with a %d-byte budget: %d spills, %d files; want some, equal", cfg.Budget, st.Spills, st.Files)
				}
				if st.SpilledBytes <= 0 || st.DirectBytes < 0 || st.DiskBytes > w.Total {
					t.Errorf("spool: spilled %d + direct %d = %d bytes of %d", st.SpilledBytes, st.DirectBytes, st.DiskBytes, w.Total)
				}
			}
			// The disk accounting agrees with what the process passed to
			// write(2), where the kernel tells.
			if ioBefore != nil && ioAfter != nil {
				if got := ioAfter["wchar"] - ioBefore["wchar"]; !syscallWritesMatch(got, st.DiskBytes) {
					t.Errorf("write(2) got %d bytes, store accounts for %d", got, st.DiskBytes)
				}
			}
		})
	}
}

// corruptStore wraps a Store and damages what one Sink in every few reads
// back, to prove that the check catches it.
type corruptStore struct {
	Store
	mode string // "flip" or "short"
	n    int
}

func (c *corruptStore) New() (Sink, error) {
	s, err := c.Store.New()
	return &corruptSink{Sink: s, mode: c.mode}, err
}

type corruptSink struct {
	Sink
	mode string
}

func (c *corruptSink) ReadBack(w io.Writer) (int64, error) {
	var b bytes.Buffer
	if _, err := c.Sink.ReadBack(&b); err != nil {
		return 0, err
	}
	p := b.Bytes()
	switch {
	case len(p) == 0:
	case c.mode == "flip":
		p[len(p)/2] ^= 0x01
	case c.mode == "short":
		p = p[:len(p)-1]
	}
	n, err := w.Write(p)
	return int64(n), err
}

func TestChecksumCatchesCorruption(t *testing.T) {
	cfg := tinyConfig()
	w := newWorkload(cfg.Seed, cfg.Total, cfg.MinSize, cfg.MaxSize)
	for _, mode := range []string{"flip", "short"} {
		store, err := openSpool(cfg)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := runUploadsOn(&corruptStore{Store: store, mode: mode}, w, cfg.Clients, cfg.Piece)
		store.Close()
		if got := st.checksumErrors.Load(); got != int64(len(w.Uploads)) {
			t.Errorf("%s: %d checksum errors, want %d (one per upload)", mode, got, len(w.Uploads))
		}
	}
}

func TestWorkload(t *testing.T) {
	const total, lo, hi = 1 << 30, 4 << 10, 32 << 20
	w := newWorkload(1, total, lo, hi)
	if again := newWorkload(1, total, lo, hi); len(again.Uploads) != len(w.Uploads) || again.Total != w.Total {
		t.Fatal("workload is not deterministic")
	}
	last := w.Uploads[len(w.Uploads)-1].Size
	if w.Total < total || w.Total-last >= total {
		t.Errorf("%d uploads total %d: not the fewest that reach %d", len(w.Uploads), w.Total, total)
	}
	seeds := make(map[uint64]bool)
	var sum int64
	for _, u := range w.Uploads {
		if u.Size < lo || u.Size > hi {
			t.Errorf("size %d out of [%d, %d]", u.Size, lo, hi)
		}
		if seeds[u.Seed] {
			t.Errorf("seed %x repeated", u.Seed)
		}
		seeds[u.Seed] = true
		sum += u.Size
	}
	if sum != w.Total {
		t.Errorf("sizes sum to %d, Total says %d", sum, w.Total)
	}
	if other := newWorkload(2, total, lo, hi); other.Total == w.Total {
		t.Error("seeds 1 and 2 give the same workload")
	}
}

// Generating an upload piece by piece gives the same bytes as all at once,
// and different seeds give different bytes.
func TestGen(t *testing.T) {
	whole := make([]byte, 100_003)
	g := newGen(42)
	g.fill(whole)
	var pieces []byte
	g = newGen(42)
	for off := 0; off < len(whole); off += 32 << 10 {
		p := make([]byte, min(32<<10, len(whole)-off))
		g.fill(p)
		pieces = append(pieces, p...)
	}
	if !bytes.Equal(whole, pieces) {
		t.Error("piecewise generation differs")
	}
	other := make([]byte, len(whole))
	g = newGen(43)
	g.fill(other)
	if bytes.Equal(whole, other) {
		t.Error("seeds 42 and 43 give the same bytes")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"67108864": 64 << 20, "64MiB": 64 << 20, "64 MiB": 64 << 20, "64mib": 64 << 20,
		"64M": 64 << 20, "64MB": 64e6, "1.5GiB": 3 << 29, "4KiB": 4096, "4k": 4096, "0": 0,
		"32 KiB": 32 << 10, "7B": 7,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "64 parsecs", "-1", "1e99GiB", "1.2.3", "1.5", "99999999999999999999"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
	for _, n := range []int64{0, 7, 4096, 64 << 20, 3 << 29, 1610612737} {
		if got, err := parseSize(formatSize(n)); err != nil || (n%1024 == 0 && got != n) {
			t.Errorf("parseSize(formatSize(%d)) = %d, %v", n, got, err)
		}
	}
}

func TestFlagsRoundTrip(t *testing.T) {
	cfg, err := parseFlags([]string{"-budget", "16MiB", "-clients", "3", "-total", "1GiB", "-seed", "9", "-impl", "spool, bytes"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Budget != 16<<20 || cfg.Clients != 3 || cfg.Total != 1<<30 || cfg.Seed != 9 || strings.Join(cfg.Impls, ",") != "spool,bytes" {
		t.Fatalf("parsed %+v", cfg)
	}
	child, err := parseFlags(cfg.childArgs("spool"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if child.Child != "spool" {
		t.Errorf("child runs %q", child.Child)
	}
	child.Impls, cfg.Impls, child.Child = nil, nil, ""
	if !reflect.DeepEqual(child, cfg) {
		t.Errorf("child sees %+v, parent has %+v", child, cfg)
	}
	for _, bad := range [][]string{{"-impl", "nope"}, {"-scenario", "nope"}, {"-budget", "lots"}, {"-clients", "0"}, {"extra"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
}

// The child side of the protocol prints one JSON Result with its
// measurements, in process.
func TestChildMain(t *testing.T) {
	cfg := tinyConfig()
	cfg.TempDir = t.TempDir()
	cfg.Child = "spool"
	var out, errs bytes.Buffer
	if code := childMain(cfg, &out, &errs); code != 0 {
		t.Fatalf("exit %d, stderr %q, stdout %q", code, errs.String(), out.String())
	}
	var res Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if res.Impl != "spool" || res.Uploads == 0 || res.Uploads != res.WantUploads || res.WallSeconds <= 0 || res.Store.Budget != cfg.Budget {
		t.Errorf("result %+v", res)
	}
	if readProcIO() != nil && res.PeakHWM <= 0 {
		t.Errorf("no peak RSS on a system with /proc: %+v", res)
	}
}

func TestReportTable(t *testing.T) {
	cfg := tinyConfig()
	run := Run{Scenario: "uploads", Config: cfg, Results: []Result{
		{Impl: "bytes", Label: "bytes.Buffer", Bytes: 1e9, WallSeconds: 2, PeakHWM: 1, PeakRSSAboveBaseline: 1 << 30},
		{Impl: "spool", Label: "spool", Bytes: 1e9, WallSeconds: 1, PeakHWM: 1, PeakRSSAboveBaseline: 80 << 20,
			Store: StoreStats{Budget: cfg.Budget, Spills: 1234, SpilledBytes: 5 << 20, DiskBytes: 9 << 20, Files: 1234}, SyscallWriteBytes: 9 << 20},
	}}
	var b bytes.Buffer
	printReport(&b, run)
	var rows []string
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, "|") {
			rows = append(rows, line)
		}
	}
	if len(rows) != 4 {
		t.Fatalf("want header, separator and 2 rows:\n%s", b.String())
	}
	for _, r := range rows {
		if utf8.RuneCountInString(r) != utf8.RuneCountInString(rows[0]) {
			t.Errorf("ragged table:\n%s", strings.Join(rows, "\n"))
			break
		}
	}
	if !strings.Contains(rows[3], "2.00x") || !strings.Contains(rows[3], "1,234") || strings.Contains(b.String(), "NOTE") {
		t.Errorf("unexpected report:\n%s", b.String())
	}
}

// The parent runs every implementation in a child process (this test
// binary, see TestMain), collects the results and prints the table; a
// checksum error in a child makes it fail.
func TestParentMain(t *testing.T) {
	cfg := tinyConfig()
	cfg.TempDir = t.TempDir()
	var out, errs bytes.Buffer
	if code := parentMain(cfg, &out, &errs); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errs.String())
	}
	for _, im := range impls {
		if !strings.Contains(out.String(), "| "+im.Label+" ") {
			t.Errorf("no row for %s:\n%s", im.Label, out.String())
		}
	}
	if strings.Contains(out.String(), "NOTE") || strings.Contains(out.String(), "n/a") && readProcIO() != nil {
		t.Errorf("unexpected report:\n%s", out.String())
	}

	t.Setenv("SPOOLBENCH_TEST_CORRUPT", "1")
	cfg.Impls = []string{"spool"}
	cfg.JSON = true
	out.Reset()
	errs.Reset()
	if code := parentMain(cfg, &out, &errs); code == 0 {
		t.Fatalf("exit 0 with corrupt read-backs\nstdout:\n%s\nstderr:\n%s", out.String(), errs.String())
	}
	var run Run
	if err := json.Unmarshal(out.Bytes(), &run); err != nil {
		t.Fatal(err)
	}
	if len(run.Results) != 1 || run.Results[0].ChecksumErrors == 0 || len(run.Failures) != 1 || run.Results[0].CPUSeconds() <= 0 {
		t.Errorf("JSON run %+v", run)
	}
}
