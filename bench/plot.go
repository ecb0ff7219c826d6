package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Plots, drawn with gonum.org/v1/plot for -plot. -plot DIR/NAME.EXT
// writes one file per scenario that has a plot, named after the scenario:
// DIR/uploads-NAME.EXT (RSS of each implementation over time),
// DIR/scale-NAME.EXT (the scale curves, four panels), DIR/blobs-NAME.EXT
// (memory held and RSS over the run, and the hit ratio over the reads, of
// spool and the map), DIR/slow-NAME.EXT (RSS over time of each slow
// variant next to its discarding harness) and DIR/shrink-NAME.EXT (RSS,
// Go heap and MemoryInUse over the shrink run, the shrink marked). EXT is
// png or svg.

// plotFormats are the file types -plot accepts.
var plotFormats = []string{"png", "svg"}

// plotFormat returns the format of path from its extension, or an error.
func plotFormat(path string) (string, error) {
	ext := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	if !slices.Contains(plotFormats, ext) {
		return "", fmt.Errorf("-plot %q: want a file name ending in .%s", path, strings.Join(plotFormats, " or ."))
	}
	return ext, nil
}

// plotPath returns the file of scenario for -plot file.
func plotPath(file, scenario string) string {
	dir, base := filepath.Split(file)
	return filepath.Join(dir, scenario+"-"+base)
}

// implStyle is the color and width of an implementation's line, the same
// in every plot.
func implStyle(impl string) draw.LineStyle {
	c := map[string]color.RGBA{
		spoolImpl:   {R: 0x1f, G: 0x5f, B: 0xd0, A: 0xff}, // blue
		"bytes":     {R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, // red
		"tempfile":  {R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, // green
		"multipart": {R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, // orange
		"djherbis":  {R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, // purple
		// blobs: the map baseline.
		"map": {R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, // orange
		// slow: spool's variants blue, the harnesses gray and green.
		"copy":           {R: 0x1f, G: 0x5f, B: 0xd0, A: 0xff},
		"http":           {R: 0x1f, G: 0x5f, B: 0xd0, A: 0xff},
		"copy-discard":   {R: 0x60, G: 0x60, B: 0x60, A: 0xff},
		"http-discard":   {R: 0x60, G: 0x60, B: 0x60, A: 0xff},
		"http-multipart": {R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	}[impl]
	if c.A == 0 {
		c = color.RGBA{A: 0xff}
	}
	w := vg.Points(1.5)
	if impl == spoolImpl || impl == "copy" || impl == "http" {
		w = vg.Points(2.5)
	}
	return draw.LineStyle{Color: c, Width: w}
}

// refStyle is the style of reference lines (budgets).
func refStyle(dashes ...vg.Length) draw.LineStyle {
	return draw.LineStyle{Color: color.Gray{Y: 0x60}, Width: vg.Points(1), Dashes: dashes}
}

// newPlot returns a plot with the title and axis labels, in fonts large
// enough to read in a README.
func newPlot(title, x, y string) *plot.Plot {
	plot.DefaultFont = font.Font{Typeface: "Liberation", Variant: "Sans"}
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.X.Label.TextStyle.Font.Size = vg.Points(11)
	p.Y.Label.TextStyle.Font.Size = vg.Points(11)
	p.X.Tick.Label.Font.Size = vg.Points(10)
	p.Y.Tick.Label.Font.Size = vg.Points(10)
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(8)
	p.Legend.YOffs = vg.Points(-4)
	p.Add(plotter.NewGrid())
	return p
}

// Log axes. gonum's plot.LogScale centres a long axis label at the
// arithmetic middle of the range, pushing the data area away from the
// title, so the log plots here plot lg(value) on a linear axis instead and
// label the ticks with the values.

// lg is the coordinate of v on a log axis.
func lg(v float64) float64 { return math.Log2(v) }

// logTicks returns ticks, in lg coordinates, at the powers of base from lo
// to hi (values), labelled by label, with unlabelled minor ticks in between
// for base 10.
func logTicks(lo, hi, base float64, label func(float64) string) plot.ConstantTicks {
	var ticks []plot.Tick
	in := func(v float64) bool { return v >= lo*(1-1e-9) && v <= hi*(1+1e-9) } // ticks outside would take room
	for v := math.Pow(base, math.Floor(math.Log(lo)/math.Log(base))); v <= hi*(1+1e-9); v *= base {
		if in(v) {
			ticks = append(ticks, plot.Tick{Value: lg(v), Label: label(v)})
		}
		if base == 10 {
			for k := 2.0; k < 10; k++ {
				if in(v * k) {
					ticks = append(ticks, plot.Tick{Value: lg(v * k)})
				}
			}
		}
	}
	return plot.ConstantTicks(ticks)
}

// setLog makes axis a a log axis from lo to hi (values) with ticks at the
// powers of base. Data on it must be given as lg(value).
func setLog(a *plot.Axis, lo, hi, base float64, label func(float64) string) {
	a.Min, a.Max = lg(lo), lg(hi)
	a.Tick.Marker = logTicks(lo, hi, base, label)
}

// linearTicks returns about n labelled ticks from lo to hi, at a round step.
func linearTicks(lo, hi float64, n int) plot.ConstantTicks {
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if step = m * mag; step >= raw {
			break
		}
	}
	prec := max(0, int(-math.Floor(math.Log10(step)+1e-9)))
	if step*math.Pow(10, float64(prec)) != math.Round(step*math.Pow(10, float64(prec))) {
		prec++ // 2.5, 0.25
	}
	var ticks []plot.Tick
	for k := math.Ceil(lo / step); k*step <= hi+step/1e6; k++ {
		v := k * step
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', prec, 64)})
	}
	return plot.ConstantTicks(ticks)
}

func mibLabel(v float64) string {
	if v >= 1024 {
		return fmt.Sprintf("%g GiB", v/1024)
	}
	return fmt.Sprintf("%g MiB", v)
}

// addLine adds a line through xys with style, named in the legend.
func addLine(p *plot.Plot, xys plotter.XYs, style draw.LineStyle, name string, points bool) error {
	l, err := plotter.NewLine(xys)
	if err != nil {
		return err
	}
	l.LineStyle = style
	p.Add(l)
	var thumbs []plot.Thumbnailer
	thumbs = append(thumbs, l)
	if points {
		s, err := plotter.NewScatter(xys)
		if err != nil {
			return err
		}
		s.GlyphStyle.Color = style.Color
		s.GlyphStyle.Radius = vg.Points(3)
		s.GlyphStyle.Shape = draw.CircleGlyph{}
		p.Add(s)
		thumbs = append(thumbs, s)
	}
	if name != "" {
		p.Legend.Add(name, thumbs...)
	}
	return nil
}

// hline adds a horizontal reference line at y from x0 to x1.
func hline(p *plot.Plot, y, x0, x1 float64, style draw.LineStyle, name string) error {
	return addLine(p, plotter.XYs{{X: x0, Y: y}, {X: x1, Y: y}}, style, name, false)
}

// savePlots draws plots, a grid of rows × cols (nil leaves a cell empty),
// into path, w × h.
func savePlots(path string, plots [][]*plot.Plot, w, h vg.Length) error {
	format, err := plotFormat(path)
	if err != nil {
		return err
	}
	c, err := draw.NewFormattedCanvas(w, h, format)
	if err != nil {
		return err
	}
	dc := draw.New(c)
	// A white background, for viewers that show PNG transparency dark.
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	rows, cols := len(plots), len(plots[0])
	tiles := draw.Tiles{
		Rows: rows, Cols: cols,
		PadX: vg.Millimeter * 8, PadY: vg.Millimeter * 8,
		PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3,
		PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 5,
	}
	canvases := plot.Align(plots, tiles, dc)
	for i := range rows {
		for j := range cols {
			if plots[i][j] != nil {
				plots[i][j].Draw(canvases[i][j])
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// plotUploads draws the RSS of each implementation of the uploads run over
// time, on a log scale, with the spool budget.
func plotUploads(path string, run Run) error {
	cfg := run.Config
	budget := float64(cfg.Budget) / (1 << 20)
	floor := min(1.0, budget/4) // MiB: the log axis starts here; smaller values are drawn at it
	p := newPlot(
		fmt.Sprintf("uploads: memory over time (%d clients, %s in %d uploads of %s–%s, spool budget %s)",
			cfg.Clients, formatSize(cfg.Total), len(newWorkload(cfg.Seed, cfg.Total, cfg.MinSize, cfg.MaxSize).Uploads),
			formatSize(cfg.MinSize), formatSize(cfg.MaxSize), formatSize(cfg.Budget)),
		"time since the workload started (s)",
		"RSS above baseline (MiB, log scale)")
	hi, tmax := 0.0, 0.0
	for _, r := range run.Results {
		if len(r.RSS) == 0 {
			continue
		}
		xys := make(plotter.XYs, len(r.RSS))
		for i, s := range r.RSS {
			y := max(float64(s.Bytes)/(1<<20), floor)
			xys[i] = plotter.XY{X: s.Seconds, Y: lg(y)}
			hi, tmax = max(hi, y), max(tmax, s.Seconds)
		}
		name := fmt.Sprintf("%s: peak %s, %.2f s", r.Label, rssCell(r), r.WallSeconds)
		if err := addLine(p, xys, implStyle(r.Impl), name, false); err != nil {
			return err
		}
	}
	if tmax == 0 {
		return fmt.Errorf("no RSS samples to plot (they need /proc/self/status)")
	}
	{
		if err := hline(p, lg(budget), 0, tmax, refStyle(vg.Points(6), vg.Points(3)), fmt.Sprintf("spool budget, %s", formatSize(cfg.Budget))); err != nil {
			return err
		}
		if err := hline(p, lg(1.25*budget), 0, tmax, refStyle(vg.Points(2), vg.Points(2)), "1.25 × budget (target for spool)"); err != nil {
			return err
		}
		hi = max(hi, 1.25*budget)
	}
	setLog(&p.Y, floor, math.Pow(2, math.Ceil(math.Log2(hi*1.5))), 4, mibLabel)
	p.X.Min, p.X.Max = 0, tmax*1.02
	p.X.Tick.Marker = linearTicks(0, tmax, 10)
	p.Legend.Left, p.Legend.Top = false, false
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(-8), vg.Points(8)
	return savePlots(path, [][]*plot.Plot{{p}}, 11*vg.Inch, 6*vg.Inch)
}

// plotScale draws the scale run in four panels: peak RSS and throughput
// against the number of buffers held at once, and against the budget.
func plotScale(path string, run Run) error {
	cfg := run.Config
	pb, _ := lookupImpl("multipart")
	rss := func(r *Result) float64 { return max(mib(r), 1) }
	budget := float64(cfg.Budget) / (1 << 20)
	dash, dot := refStyle(vg.Points(6), vg.Points(3)), refStyle(vg.Points(2), vg.Points(2))

	// Concurrency sweep.
	memN := newPlot(fmt.Sprintf("Peak memory vs buffers held at once (budget %s)", formatSize(cfg.Budget)),
		fmt.Sprintf("buffers held at once, N (each %s / N; log scale)", formatSize(cfg.ScaleBytes)), "peak RSS above baseline (MiB, log scale)")
	gbN := newPlot("Throughput vs buffers held at once",
		"buffers held at once, N (log scale)", "throughput (GB/s, written + read back)")
	ns := slices.Clone(cfg.ScaleBuffers)
	slices.Sort(ns)
	lo, hi, gmax := budget, budget, 0.0
	for _, impl := range []string{spoolImpl, "multipart"} {
		var mem, thr plotter.XYs
		for _, n := range ns {
			r := scalePoint(run.Results, impl, n, cfg.Budget)
			if r == nil {
				continue
			}
			if !math.IsNaN(mib(r)) {
				mem = append(mem, plotter.XY{X: lg(float64(n)), Y: lg(rss(r))})
				lo, hi = min(lo, rss(r)), max(hi, rss(r))
			}
			thr = append(thr, plotter.XY{X: lg(float64(n)), Y: r.GBps()})
			gmax = max(gmax, r.GBps())
		}
		label := map[string]string{spoolImpl: "spool (one budget for all)", "multipart": fmt.Sprintf("%s (%s per buffer, then a file)", pb.Label, formatSize(cfg.Threshold))}[impl]
		if len(mem) > 0 {
			if err := addLine(memN, mem, implStyle(impl), label, true); err != nil {
				return err
			}
		}
		if len(thr) > 0 {
			if err := addLine(gbN, thr, implStyle(impl), label, true); err != nil {
				return err
			}
		}
	}
	if len(ns) > 0 {
		x0, x1 := float64(ns[0])/1.5, float64(ns[len(ns)-1])*1.5
		if err := hline(memN, lg(budget), lg(x0), lg(x1), dash, "spool budget"); err != nil {
			return err
		}
		countLabel := func(v float64) string { return commas(int64(v)) }
		setLog(&memN.X, x0, x1, 10, countLabel)
		setLog(&gbN.X, x0, x1, 10, countLabel)
		setLog(&memN.Y, math.Pow(2, math.Floor(math.Log2(lo/1.5))), math.Pow(2, math.Ceil(math.Log2(hi*1.5))), 2, mibLabel)
	}
	gbN.Y.Min, gbN.Y.Max = 0, gmax*1.15
	gbN.Legend.Top = false

	// Budget sweep.
	bs := slices.Clone(cfg.ScaleBudgets)
	slices.Sort(bs)
	memB := newPlot(fmt.Sprintf("Peak memory vs budget (%s buffers held at once)", commas(int64(cfg.ScaleLoad))),
		"spool budget (MiB, log scale)", "peak RSS above baseline (MiB, log scale)")
	gbB := newPlot(fmt.Sprintf("Throughput vs budget (%s buffers held at once)", commas(int64(cfg.ScaleLoad))),
		"spool budget (MiB, log scale)", "throughput (GB/s, written + read back)")
	if len(bs) > 0 {
		var mem, thr, ref, ref125 plotter.XYs
		x0, x1 := float64(bs[0])/(1<<20), float64(bs[len(bs)-1])/(1<<20)
		loB, hiB, gmax := x0, 1.25*x1, 0.0
		for _, b := range bs {
			x := float64(b) / (1 << 20)
			ref = append(ref, plotter.XY{X: lg(x), Y: lg(x)})
			ref125 = append(ref125, plotter.XY{X: lg(x), Y: lg(1.25 * x)})
			if r := scalePoint(run.Results, spoolImpl, cfg.ScaleLoad, b); r != nil {
				if !math.IsNaN(mib(r)) {
					mem = append(mem, plotter.XY{X: lg(x), Y: lg(rss(r))})
					loB, hiB = min(loB, rss(r)), max(hiB, rss(r))
				}
				thr = append(thr, plotter.XY{X: lg(x), Y: r.GBps()})
				gmax = max(gmax, r.GBps())
			}
		}
		if len(mem) > 0 {
			if err := addLine(memB, mem, implStyle(spoolImpl), "spool", true); err != nil {
				return err
			}
		}
		if err := addLine(memB, ref, dash, "RSS = budget", false); err != nil {
			return err
		}
		if err := addLine(memB, ref125, dot, "RSS = 1.25 × budget", false); err != nil {
			return err
		}
		if len(thr) > 0 {
			if err := addLine(gbB, thr, implStyle(spoolImpl), "spool", true); err != nil {
				return err
			}
		}
		if p := scalePoint(run.Results, "multipart", cfg.ScaleLoad, cfg.Budget); p != nil {
			name := fmt.Sprintf("%s (%s per buffer, no budget)", pb.Label, formatSize(cfg.Threshold))
			if !math.IsNaN(mib(p)) {
				if err := hline(memB, lg(rss(p)), lg(x0/1.3), lg(x1*1.3), implStyle("multipart"), name); err != nil {
					return err
				}
				loB, hiB = min(loB, rss(p)), max(hiB, rss(p))
			}
			if err := hline(gbB, p.GBps(), lg(x0/1.3), lg(x1*1.3), implStyle("multipart"), name); err != nil {
				return err
			}
			gmax = max(gmax, p.GBps())
		}
		label := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
		setLog(&memB.X, x0/1.3, x1*1.3, 2, label)
		setLog(&gbB.X, x0/1.3, x1*1.3, 2, label)
		setLog(&memB.Y, math.Pow(2, math.Floor(math.Log2(loB/1.5))), math.Pow(2, math.Ceil(math.Log2(hiB*1.5))), 2, mibLabel)
		gbB.Y.Min, gbB.Y.Max = 0, gmax*1.15
	}
	gbB.Legend.Top = false
	// The per-buffer spool's line runs along the top: the legend goes
	// below spool's points, bottom right.
	memB.Legend.Top, memB.Legend.Left = false, false
	memB.Legend.XOffs, memB.Legend.YOffs = vg.Points(-8), vg.Points(8)
	return savePlots(path, [][]*plot.Plot{{memN, gbN}, {memB, gbB}}, 14*vg.Inch, 10*vg.Inch)
}

// plotBlobs draws the blobs run in two panels: memory over the run (each
// store's RSS above its baseline, what it holds in memory, and spool's
// MemoryInUse) and the hit ratio over the reads.
func plotBlobs(path string, run Run) error {
	cfg := run.Config
	budget := float64(cfg.BlobsBudget) / (1 << 20)
	mem := newPlot(fmt.Sprintf("blobs: memory over the run (%s blobs of %s–%s, budget %s)",
		commas(int64(cfg.BlobsCount)), formatSize(cfg.BlobsMinSize), formatSize(cfg.BlobsMaxSize), formatSize(cfg.BlobsBudget)),
		"time since the workload started (s)", "MiB")
	hits := newPlot(fmt.Sprintf("blobs: reads served from memory (Zipf s = %g)", cfg.BlobsZipf),
		"reads done (%)", "hit ratio in each 1/60 of the reads (%)")
	hi, tmax, hmin := budget*1.25, 0.0, 100.0
	dashed := func(st draw.LineStyle) draw.LineStyle {
		st.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		st.Width = vg.Points(1.5)
		return st
	}
	dotted := func(st draw.LineStyle) draw.LineStyle {
		st.Dashes = []vg.Length{vg.Points(1.5), vg.Points(2.5)}
		st.Width = vg.Points(2)
		return st
	}
	for _, r := range run.Results {
		b := r.Blobs
		if b == nil {
			continue
		}
		name := r.Label
		if r.Impl == spoolImpl {
			name = "spool"
		}
		if len(r.RSS) > 0 {
			xys := make(plotter.XYs, len(r.RSS))
			for i, s := range r.RSS {
				xys[i] = plotter.XY{X: s.Seconds, Y: float64(s.Bytes) / (1 << 20)}
				hi, tmax = max(hi, xys[i].Y), max(tmax, s.Seconds)
			}
			if err := addLine(mem, xys, implStyle(r.Impl), fmt.Sprintf("%s: RSS above baseline (peak %s)", name, rssCell(r)), false); err != nil {
				return err
			}
		}
		var data, inUse plotter.XYs
		for _, p := range b.Samples {
			data = append(data, plotter.XY{X: p.Seconds, Y: float64(p.Data) / (1 << 20)})
			inUse = append(inUse, plotter.XY{X: p.Seconds, Y: float64(p.MemoryInUse) / (1 << 20)})
			tmax = max(tmax, p.Seconds)
		}
		if len(data) > 0 {
			if err := addLine(mem, data, dotted(implStyle(r.Impl)), fmt.Sprintf("%s: data held in memory", name), false); err != nil {
				return err
			}
		}
		if r.Impl == spoolImpl && len(inUse) > 0 {
			label := fmt.Sprintf("spool: MemoryInUse (efficiency %.2f after the writes, %.2f at the end)", b.AfterWrite.Efficiency(), b.End.Efficiency())
			if err := addLine(mem, inUse, dashed(implStyle(r.Impl)), label, false); err != nil {
				return err
			}
		}
		var hr plotter.XYs
		for i, win := range b.Buckets {
			if win.Reads > 0 {
				y := 100 * win.Ratio()
				hr = append(hr, plotter.XY{X: 100 * (float64(i) + 0.5) / float64(len(b.Buckets)), Y: y})
				hmin = min(hmin, y)
			}
		}
		if len(hr) > 0 {
			if err := addLine(hits, hr, implStyle(r.Impl), fmt.Sprintf("%s: %s of all reads", name, pctCell(b.Reads.Ratio())), true); err != nil {
				return err
			}
		}
	}
	if tmax == 0 {
		return fmt.Errorf("nothing to plot")
	}
	if err := hline(mem, budget, 0, tmax, refStyle(vg.Points(6), vg.Points(3)), fmt.Sprintf("budget and the map's cap, %s", formatSize(cfg.BlobsBudget))); err != nil {
		return err
	}
	mem.X.Min, mem.X.Max = 0, tmax*1.02
	mem.X.Tick.Marker = linearTicks(0, tmax, 8)
	mem.Y.Min, mem.Y.Max = 0, hi*1.35
	mem.Y.Tick.Marker = linearTicks(0, hi*1.35, 8)
	hits.X.Min, hits.X.Max = 0, 100
	hits.X.Tick.Marker = linearTicks(0, 100, 10)
	lo := math.Max(0, math.Floor(hmin/10)*10-10)
	hits.Y.Min, hits.Y.Max = lo, 100
	hits.Y.Tick.Marker = linearTicks(lo, 100, 8)
	hits.Legend.Top = false
	return savePlots(path, [][]*plot.Plot{{mem, hits}}, 15*vg.Inch, 6*vg.Inch)
}

// plotSlow draws the RSS over time of each slow variant, the io.Copy
// variants in one panel and the HTTP ones in another, with the target
// line: the harness's peak plus slowRSSTarget × budget.
func plotSlow(path string, run Run) error {
	cfg := run.Config
	budget := float64(cfg.SlowBudget) / (1 << 20)
	var panels []*plot.Plot
	for _, group := range []struct {
		title   string
		impls   []string
		harness string
	}{
		{"io.Copy(buf, body) from an in-process slow reader", []string{"copy", "copy-discard"}, "copy-discard"},
		{"spoolhttp.ParseMultipartForm over loopback HTTP (server process)", []string{"http", "http-discard", "http-multipart"}, "http-discard"},
	} {
		var rs []*Result
		for _, impl := range group.impls {
			if r := findResult(run.Results, impl); r != nil && len(r.RSS) > 0 {
				rs = append(rs, r)
			}
		}
		if len(rs) == 0 {
			continue
		}
		n := rs[0].Slow.Uploads
		p := newPlot(fmt.Sprintf("slow: %s, %s uploads, budget %s", group.title, commas(int64(n)), formatSize(cfg.SlowBudget)),
			"time since the workload started (s)", "RSS above baseline (MiB)")
		hi, tmax := 0.0, 0.0
		for _, r := range rs {
			xys := make(plotter.XYs, len(r.RSS))
			for i, s := range r.RSS {
				xys[i] = plotter.XY{X: s.Seconds, Y: float64(s.Bytes) / (1 << 20)}
				hi, tmax = max(hi, xys[i].Y), max(tmax, s.Seconds)
			}
			name := fmt.Sprintf("%s: peak %s", r.Label, rssCell(*r))
			if d := slowAboveMiB(run.Results, r); !math.IsNaN(d) {
				name += fmt.Sprintf(", %.1f MiB above the harness (%.2fx budget)", d, d/budget)
			}
			if err := addLine(p, xys, implStyle(r.Impl), name, false); err != nil {
				return err
			}
		}
		if h := findResult(run.Results, group.harness); h != nil && h.PeakHWM > 0 {
			y := float64(h.PeakRSSAboveBaseline)/(1<<20) + slowRSSTarget*budget
			if err := hline(p, y, 0, tmax, refStyle(vg.Points(2), vg.Points(2)), fmt.Sprintf("harness peak + %.2f × budget (target for spool)", slowRSSTarget)); err != nil {
				return err
			}
			hi = max(hi, y)
		}
		p.X.Min, p.X.Max = 0, tmax*1.02
		p.X.Tick.Marker = linearTicks(0, tmax, 8)
		p.Y.Min, p.Y.Max = 0, hi*1.3
		p.Y.Tick.Marker = linearTicks(0, hi*1.3, 8)
		panels = append(panels, p)
	}
	if len(panels) == 0 {
		return fmt.Errorf("no RSS samples to plot (they need /proc/self/status)")
	}
	grid := make([][]*plot.Plot, len(panels))
	for i, p := range panels {
		grid[i] = []*plot.Plot{p}
	}
	return savePlots(path, grid, 12*vg.Inch, vg.Length(len(panels))*5*vg.Inch)
}

// plotShrink draws the shrink run: the RSS above baseline, the Go heap's
// objects and spool's MemoryInUse over time, the budget before and after
// the shrink, and the moment SetMemoryBudget was called.
func plotShrink(path string, run Run) error {
	r := findResult(run.Results, spoolImpl)
	if r == nil || r.Shrink == nil {
		return fmt.Errorf("no shrink result to plot")
	}
	s := r.Shrink
	p := newPlot(fmt.Sprintf("shrink: memory over time (%d clients, %s in %d uploads; budget %s, SetMemoryBudget(%s) once %s are written)",
		r.Clients, formatSize(r.WantBytes), r.WantUploads, formatSize(s.Budget), formatSize(s.To), formatSize(s.At)),
		"time since the workload started (s)", "MiB")
	toMiB := func(n int64) float64 { return float64(n) / (1 << 20) }
	hi, tmax := toMiB(s.Budget)*1.25, s.End
	var rss, heap plotter.XYs
	for _, x := range r.RSS {
		rss = append(rss, plotter.XY{X: x.Seconds, Y: toMiB(x.Bytes)})
		if x.HeapObjects > 0 {
			heap = append(heap, plotter.XY{X: x.Seconds, Y: toMiB(x.HeapObjects)})
		}
		hi, tmax = max(hi, toMiB(x.Bytes)), max(tmax, x.Seconds)
	}
	var inUse plotter.XYs
	for _, x := range s.Timeline {
		inUse = append(inUse, plotter.XY{X: x.Seconds, Y: toMiB(x.InUse)})
		tmax = max(tmax, x.Seconds)
	}
	if len(rss) == 0 && len(inUse) == 0 {
		return fmt.Errorf("nothing to plot")
	}
	blue := implStyle(spoolImpl)
	if len(rss) > 0 {
		p2 := shrinkPhases(*r, s)
		name := fmt.Sprintf("RSS above baseline (peak %s before the shrink, %s at the last upload)", mibCell(p2.before), mibCell(p2.end))
		if err := addLine(p, rss, blue, name, false); err != nil {
			return err
		}
	}
	if len(heap) > 0 {
		st := draw.LineStyle{Color: color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, Width: vg.Points(1.5), Dashes: []vg.Length{vg.Points(1.5), vg.Points(2.5)}}
		if err := addLine(p, heap, st, "Go heap objects (live and not yet collected)", false); err != nil {
			return err
		}
	}
	if len(inUse) > 0 {
		st := draw.LineStyle{Color: color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, Width: vg.Points(1.5)}
		name := fmt.Sprintf("spool MemoryInUse (at most %s after SetMemoryBudget returned)", mibCell(s.MaxInUse))
		if err := addLine(p, inUse, st, name, false); err != nil {
			return err
		}
	}
	budget := plotter.XYs{{X: 0, Y: toMiB(s.Budget)}, {X: s.Called, Y: toMiB(s.Budget)}, {X: s.Called, Y: toMiB(s.To)}, {X: tmax, Y: toMiB(s.To)}}
	if err := addLine(p, budget, refStyle(vg.Points(6), vg.Points(3)), fmt.Sprintf("budget: %s, then %s", formatSize(s.Budget), formatSize(s.To)), false); err != nil {
		return err
	}
	ret := "nil"
	if s.Err != "" {
		ret = "an error"
		if s.OverBudget {
			ret = "ErrOverBudget"
		}
	}
	mark := draw.LineStyle{Color: color.Black, Width: vg.Points(1.5), Dashes: []vg.Length{vg.Points(2), vg.Points(2)}}
	name := fmt.Sprintf("SetMemoryBudget(%s) called at %.2f s, returned %s after %s", formatSize(s.To), s.Called, ret, latCell(float64(s.Duration().Nanoseconds())/1e6))
	if err := addLine(p, plotter.XYs{{X: s.Called, Y: 0}, {X: s.Called, Y: hi * 1.3}}, mark, name, false); err != nil {
		return err
	}
	p.X.Min, p.X.Max = 0, tmax*1.02
	p.X.Tick.Marker = linearTicks(0, tmax, 10)
	p.Y.Min, p.Y.Max = 0, hi*1.3
	p.Y.Tick.Marker = linearTicks(0, hi*1.3, 8)
	p.Legend.Left = false
	p.Legend.XOffs = vg.Points(-8)
	return savePlots(path, [][]*plot.Plot{{p}}, 12*vg.Inch, 6*vg.Inch)
}
