package spoolprom_test

import (
	"go/parser"
	"go/token"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spoolkit/spool"
	"github.com/spoolkit/spool/spoolprom"
)

// docMetric is one metric as the package documentation lists it, or as
// the Collector describes and collects it.
type docMetric struct {
	kind, help string
	label      string   // the variable label, or ""
	values     []string // its values, sorted
}

// docItem parses an entry of the list: name (type[, label=v1|v2]): help.
var docItem = regexp.MustCompile(`^(\w+) \((gauge|counter)(?:, (\w+)=([\w|]+))?\): (.+)$`)

// docMetrics parses the list under "# Metrics" in the package
// documentation in collector.go.
func docMetrics(t *testing.T) map[string]docMetric {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "collector.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	if f.Doc == nil {
		t.Fatal("collector.go has no package documentation")
	}
	_, section, ok := strings.Cut(f.Doc.Text(), "\n# Metrics\n")
	if !ok {
		t.Fatal(`the package documentation has no "# Metrics" section`)
	}
	section, _, _ = strings.Cut(section, "\n# ")
	// The list is the first one of the section; the first paragraph after
	// it ends it (a metric left out by a stray paragraph fails below as
	// undocumented).
	var items []string
list:
	for line := range strings.Lines(section) {
		switch {
		case strings.HasPrefix(line, "  - "):
			items = append(items, strings.TrimSpace(line[4:]))
		case strings.HasPrefix(line, "    ") && len(items) > 0:
			items[len(items)-1] += " " + strings.TrimSpace(line)
		case strings.TrimSpace(line) != "" && len(items) > 0:
			break list
		}
	}
	list := make(map[string]docMetric)
	for _, item := range items {
		m := docItem.FindStringSubmatch(item)
		if m == nil {
			t.Errorf("cannot parse the documented metric %q", item)
			continue
		}
		if _, dup := list[m[1]]; dup {
			t.Errorf("%s documented twice", m[1])
		}
		d := docMetric{kind: m[2], label: m[3], help: m[5]}
		if m[4] != "" {
			d.values = strings.Split(m[4], "|")
			slices.Sort(d.values)
		}
		list[m[1]] = d
	}
	if len(list) == 0 {
		t.Fatal("no metrics documented")
	}
	return list
}

// descString parses the String of a *prometheus.Desc, which has no other
// accessors for its name, help and labels.
var descString = regexp.MustCompile(`^Desc\{fqName: ("(?:[^"\\]|\\.)*"), help: ("(?:[^"\\]|\\.)*"),(?: unit: "(?:[^"\\]|\\.)*",)? constLabels: \{([^}]*)\}, variableLabels: \{([^}]*)\}\}$`)

// TestDocListsMetrics checks the package documentation's list of metrics
// against the metrics the Collector describes (names, help, labels) and
// collects (types, label values), so that the list cannot drift.
func TestDocListsMetrics(t *testing.T) {
	doc := docMetrics(t)
	m, err := spool.NewManager(spool.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := spoolprom.NewCollector(m, prometheus.Labels{"manager": "doc"})

	got := make(map[string]docMetric)
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	for desc := range ch {
		if err := desc.Err(); err != nil {
			t.Fatalf("%v: %v", desc, err)
		}
		p := descString.FindStringSubmatch(desc.String())
		if p == nil {
			t.Fatalf("cannot parse %v", desc)
		}
		name, err1 := strconv.Unquote(p[1])
		help, err2 := strconv.Unquote(p[2])
		if err1 != nil || err2 != nil {
			t.Fatalf("cannot parse %v: %v %v", desc, err1, err2)
		}
		if p[3] != `manager="doc"` {
			t.Errorf("%s: constant labels {%s}, want the Collector's", name, p[3])
		}
		if strings.Contains(p[4], ",") {
			t.Errorf("%s: variable labels {%s}: the list documents one at most", name, p[4])
		}
		if _, dup := got[name]; dup {
			t.Errorf("%s described twice", name)
		}
		got[name] = docMetric{help: help, label: p[4]}
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		d, ok := got[f.GetName()]
		if !ok {
			t.Errorf("%s collected, not described", f.GetName())
			continue
		}
		d.kind = strings.ToLower(f.GetType().String())
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() == d.label {
					d.values = append(d.values, l.GetValue())
				}
			}
		}
		slices.Sort(d.values)
		got[f.GetName()] = d
	}

	for _, name := range slices.Sorted(maps.Keys(doc)) {
		d, g := doc[name], got[name]
		switch {
		case g.help == "":
			t.Errorf("%s is documented but not described", name)
		case g.kind != d.kind || g.help != d.help || g.label != d.label || !slices.Equal(g.values, d.values):
			t.Errorf("%s is documented as\n\t%s, %s=%v: %q\nbut described and collected as\n\t%s, %s=%v: %q",
				name, d.kind, d.label, d.values, d.help, g.kind, g.label, g.values, g.help)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(got)) {
		if _, ok := doc[name]; !ok {
			t.Errorf("%s is described but not documented", name)
		}
	}
}
