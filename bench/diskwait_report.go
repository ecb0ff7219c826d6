package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// printDiskWaitReport prints the diskwait scenario: what became of the
// uploads in each variant, what the Manager held and how long writes
// waited, the write latency, and the targets.
func printDiskWaitReport(w io.Writer, run Run) {
	cfg := run.Config
	wl := newWorkload(cfg.Seed, cfg.Total, cfg.MinSize, cfg.MaxSize)
	fmt.Fprintf(w, "scenario diskwait: %d uploads, %s, log-uniform sizes %s–%s, seed %d; %d clients writing %s pieces (runtime.Gosched after each),\n",
		len(wl.Uploads), formatSize(wl.Total), formatSize(cfg.MinSize), formatSize(cfg.MaxSize), cfg.Seed, cfg.Clients, formatSize(int64(cfg.Piece)))
	fmt.Fprintf(w, "into one Manager with a %s memory budget and a %s disk budget (-diskwait-budget); an attempt whose Write fails is closed, and the upload\n",
		formatSize(cfg.Budget), formatSize(cfg.DiskWaitBudget))
	fmt.Fprintf(w, "retried from its first byte after %s, up to %d times (-diskwait-backoff, -diskwait-retries). wait: each attempt's buffer from\n",
		cfg.DiskWaitBackoff, cfg.DiskWaitRetries)
	fmt.Fprintf(w, "NewBufferContext with a context that ends after %s (-diskwait-deadline); reserve: the same, and ReserveDisk(the upload's size)\n", cfg.DiskWaitDeadline)
	fmt.Fprintln(w, "before the first write; nowait: from NewBuffer, as before waiting existed.")
	fmt.Fprintf(w, "%s %s/%s, %d CPUs, GOMAXPROCS %d\n", run.GoVersion, run.GOOS, run.GOARCH, run.NumCPU, run.MaxProcs)
	fmt.Fprintln(w)

	var flights []string
	for _, r := range run.Results {
		if d := r.DiskWait; d != nil {
			flights = append(flights, fmt.Sprintf("%s: %s uploads of %s in all", r.Impl, commas(d.PeakInFlightUploads), formatSize(d.PeakInFlight)))
		}
	}
	if len(flights) > 0 {
		fmt.Fprintf(w, "Uploads in flight at once (begun and not done, at their full sizes), at most: %s;\n", strings.Join(flights, "; "))
		fmt.Fprintf(w, "against a disk budget of %s and a memory budget of %s (%s in all).\n", formatSize(cfg.DiskWaitBudget), formatSize(cfg.Budget),
			formatSize(cfg.DiskWaitBudget+cfg.Budget))
		fmt.Fprintln(w)
	}

	t := table{header: []string{"variant", "uploads completed", "intact", "at first attempt", "failed attempts", "ErrDiskBudget", "deadline", "other", "retries", "gave up",
		"written by failed attempts", "wall", "GB/s"}}
	m := table{header: []string{"variant", "peak held", "peak DiskWaiters", "DiskWaitTime", "peak DiskInUse", "÷ DiskBudget", "rollovers failed at the budget",
		"peak MemoryInUse", "failed Writes", "p50", "max"}}
	for _, r := range run.Results {
		d := r.DiskWait
		if d == nil {
			continue
		}
		label := r.Label
		if r.problem() != "" {
			label += " (FAILED)"
		}
		t.rows = append(t.rows, []string{label, fmt.Sprintf("%s of %s", commas(int64(r.Uploads)), commas(int64(r.WantUploads))), commas(int64(d.Intact)),
			commas(int64(d.FirstTry)), commas(d.Failed()), commas(d.Refused), commas(d.DeadlineHit), commas(d.Other), commas(d.Retries), commas(int64(d.GaveUp)),
			formatSize(d.WastedBytes), fmt.Sprintf("%.2f s", r.WallSeconds), fmt.Sprintf("%.2f", r.GBps())})
		fw := d.FailedWrites
		p50, most := "–", "–"
		if fw.Count > 0 {
			p50, most = latCell(fw.P50), latCell(fw.Max)
		}
		m.rows = append(m.rows, []string{label, mibCell(d.PeakHeld), commas(int64(d.PeakWaiters)), durationCell(d.DiskWaitTime()),
			mibCell(d.PeakDiskInUse), fmt.Sprintf("%.3fx", float64(d.PeakDiskInUse)/float64(d.DiskBudget)), commas(d.SpillBudgetErrors),
			mibCell(d.Final.PeakMemoryInUse), commas(int64(fw.Count)), p50, most})
	}
	if len(t.rows) > 0 {
		t.print(w)
		fmt.Fprintln(w)
		m.print(w)
		fmt.Fprintln(w)
	}
	printLatency(w, run.Results, run.NumCPU)
	printTail(w, run.Results)

	if rr := diskwaitResult(run.Results, diskwaitReserve); rr != nil && rr.DiskWait.Reservations.Count > 0 {
		l := rr.DiskWait.Reservations
		fmt.Fprintf(w, "reserve: %s ReserveDisk calls waited p50 %s, p99 %s, max %s for their room (an admission queue).\n\n", commas(int64(l.Count)),
			latCell(l.P50), latCell(l.P99), latCell(l.Max))
	}
	fmt.Fprintln(w, "Targets:")
	if rr := diskwaitResult(run.Results, diskwaitReserve); rr == nil {
		printTarget(w, false, false, "reserve: every upload completes intact at its first attempt, none refused: not run")
	} else {
		d := rr.DiskWait
		ok := rr.Uploads == rr.WantUploads && d.Intact == rr.Uploads && d.FirstTry == rr.Uploads && d.Failed() == 0 && rr.ChecksumErrors == 0
		printTarget(w, ok, true, fmt.Sprintf("reserve: every upload completes intact at its first attempt, none refused: %d of %d uploads completed, %d intact, %d at their first attempt, %s failed attempts",
			rr.Uploads, rr.WantUploads, d.Intact, d.FirstTry, commas(d.Failed())))
	}
	wr, nr := diskwaitResult(run.Results, diskwaitWait), diskwaitResult(run.Results, diskwaitNoWait)
	text := "wait: every upload completes and is intact"
	if wr == nil {
		printTarget(w, false, false, text+": not run")
	} else {
		d := wr.DiskWait
		ok := wr.Uploads == wr.WantUploads && d.Intact == wr.Uploads && wr.ChecksumErrors == 0
		detail := fmt.Sprintf("%d of %d uploads completed, %d intact, with %s refused attempts retried", wr.Uploads, wr.WantUploads, d.Intact, commas(d.Refused))
		more := []string{fmt.Sprintf("%d uploads completed by their first attempt", d.FirstTry)}
		if d.DeadlineHit > 0 {
			more = append(more, fmt.Sprintf("%s at the deadline", commas(d.DeadlineHit)))
		}
		if d.Other > 0 {
			more = append(more, fmt.Sprintf("%s for other causes", commas(d.Other)))
		}
		if d.GaveUp > 0 {
			more = append(more, fmt.Sprintf("%d uploads given up after %d retries", d.GaveUp, d.MaxRetries))
		}
		detail += " (" + strings.Join(more, ", ") + ")"
		printTarget(w, ok, true, fmt.Sprintf("%s: %s", text, detail))
	}
	text = "nowait: behaves as today: uploads refused at the disk budget fail at once with ErrDiskBudget"
	if nr == nil {
		printTarget(w, false, false, text+": not run")
	} else {
		d := nr.DiskWait
		ok := d.Refused > 0 && d.DiskWaitTime() == 0 && d.PeakWaiters == 0
		detail := fmt.Sprintf("%s attempts failed with ErrDiskBudget", commas(d.Refused))
		if d.FailedWrites.Count > 0 {
			detail += fmt.Sprintf(" (their Writes returned in %s at most)", latCell(d.FailedWrites.Max))
		}
		detail += fmt.Sprintf(", none waited: DiskWaitTime %s, DiskWaiters at most %d; %d of %d uploads completed (%d by their first attempt)",
			durationCell(d.DiskWaitTime()), d.PeakWaiters, nr.Uploads, nr.WantUploads, d.FirstTry)
		if d.GaveUp > 0 {
			detail += fmt.Sprintf(", %d given up after %d retries", d.GaveUp, d.MaxRetries)
		}
		printTarget(w, ok, true, fmt.Sprintf("%s: %s", text, detail))
	}
	for _, v := range diskwaitVariants {
		text := v.Name + ": DiskInUse never above DiskBudget"
		r := diskwaitResult(run.Results, v.Name)
		if r == nil {
			printTarget(w, false, false, text+": not run")
			continue
		}
		d := r.DiskWait
		printTarget(w, d.WithinBudget(), d.Samples > 0, fmt.Sprintf("%s: at most %s of %s in %s reads of Stats(), %s at the end",
			text, mibCell(d.PeakDiskInUse), formatSize(d.DiskBudget), commas(d.Samples), mibCell(d.Final.DiskInUse)))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Each variant ran alone in a fresh child process. failed attempts: attempts at an upload whose Write returned an error, by its cause:")
	fmt.Fprintln(w, "ErrDiskBudget (nowait: the disk budget was spent; wait: refused to break a deadlock, when every buffer holding disk waits for more),")
	fmt.Fprintln(w, "the attempt's deadline, or other (failures of the run). at first attempt: uploads completed without a retry;")
	fmt.Fprintln(w, "retries: attempts after a failed one; gave up: uploads whose every attempt failed.")
	fmt.Fprintln(w, "written by failed attempts: the bytes their Writes took before they failed, written again by the retries. wall: the whole workload;")
	fmt.Fprintln(w, "GB/s: bytes of the completed uploads / wall. peak held: the most bytes written into buffers not yet closed, by the clients' count;")
	fmt.Fprintln(w, "peak DiskWaiters and peak DiskInUse: the most Stats() read, every millisecond; DiskWaitTime: Stats().DiskWaitTime at the end.")
	fmt.Fprintln(w, "rollovers failed at the budget: evictions and rollovers that stopped at ErrDiskBudget (OnSpill), leaving the data in memory.")
	fmt.Fprintln(w, "failed Writes: the Writes that failed an attempt, and how long they took (in wait, the time they waited before the refusal).")
	for _, r := range run.Results {
		if d := r.DiskWait; d != nil && d.FirstRefused != "" {
			fmt.Fprintf(w, "%s: first ErrDiskBudget: %s\n", r.Impl, d.FirstRefused)
		}
		if d := r.DiskWait; d != nil && d.FirstDeadline != "" {
			fmt.Fprintf(w, "%s: first deadline: %s\n", r.Impl, d.FirstDeadline)
		}
		if r.FirstError != "" {
			fmt.Fprintf(w, "%s: first error: %s\n", r.Impl, r.FirstError)
		}
	}
	fmt.Fprintf(w, "Total time %.1f s.\n", run.Seconds)
}

// diskwaitResult returns the result of the diskwait variant name, if it
// has its measurements, or nil.
func diskwaitResult(rs []Result, name string) *Result {
	r := findResult(rs, name)
	if r == nil || r.DiskWait == nil {
		return nil
	}
	return r
}

// durationCell formats a duration for a table: "0 s", "850 µs", "1.52 s".
func durationCell(d time.Duration) string {
	if d == 0 {
		return "0 s"
	}
	return latCell(float64(d) / float64(time.Millisecond))
}
