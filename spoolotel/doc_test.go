package spoolotel_test

import (
	"context"
	"go/parser"
	"go/token"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spoolkit/spool/spoolotel"
	"go.opentelemetry.io/otel/attribute"
)

// docMetric is one entry of the package documentation's list of metrics.
type docMetric struct {
	kind, unit, desc string
	key              string   // the attribute telling the series apart, or ""
	values           []string // its values
}

// docItem parses an entry: name (kind, unit[, key=v1|v2]): description.
var docItem = regexp.MustCompile(`^(\S+) \((\w+), (\S+?)(?:, (\w+)=([\w|]+))?\): (.+)$`)

// docMetrics parses the list under "# Metrics" in the package
// documentation in doc.go.
func docMetrics(t *testing.T) map[string]docMetric {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "doc.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	if f.Doc == nil {
		t.Fatal("doc.go has no package documentation")
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
		d := docMetric{kind: m[2], unit: m[3], key: m[4], desc: m[6]}
		if m[5] != "" {
			d.values = strings.Split(m[5], "|")
			slices.Sort(d.values)
		}
		list[m[1]] = d
	}
	if len(list) == 0 {
		t.Fatal("no metrics documented")
	}
	return list
}

// TestDocListsMetrics checks the package documentation's list of metrics
// against what Register exports: the same names, instruments, units,
// descriptions and attributes, so that the list cannot drift.
func TestDocListsMetrics(t *testing.T) {
	doc := docMetrics(t)
	reader, provider := newReader()
	defer provider.Shutdown(context.Background())
	m := newManager(t, 1<<20) // with a disk budget, so that every metric is observed
	reg, err := spoolotel.Register(m, provider.Meter("spoolotel_test"), attribute.String("manager", "doc"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Unregister()
	got := collect(t, reader)

	for name, d := range doc {
		e, ok := got[name]
		if !ok {
			t.Errorf("%s is documented but not exported", name)
			continue
		}
		if e.kind != d.kind || e.unit != d.unit || e.desc != d.desc {
			t.Errorf("%s is documented as\n\t%s, %q: %q\nbut exported as\n\t%s, %q: %q", name, d.kind, d.unit, d.desc, e.kind, e.unit, e.desc)
		}
		var values []string
		for attr := range e.points {
			rest, ok := strings.CutPrefix(attr, "manager=doc")
			switch {
			case !ok:
				t.Errorf("%s: point without the caller's attribute: %s", name, attr)
			case rest == "" && d.key == "":
			case d.key != "" && strings.HasPrefix(rest, ","+d.key+"="):
				values = append(values, strings.TrimPrefix(rest, ","+d.key+"="))
			default:
				t.Errorf("%s: point %s, documented attribute %q", name, attr, d.key)
			}
		}
		slices.Sort(values)
		if !slices.Equal(values, d.values) {
			t.Errorf("%s: %s values %v exported, %v documented", name, d.key, values, d.values)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(got)) {
		if _, ok := doc[name]; !ok {
			t.Errorf("%s is exported but not documented", name)
		}
	}
}
