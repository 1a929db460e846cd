package plot

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
)

func sampleChart() *Chart {
	x := []float64{25, 50, 100, 200, 300}
	return &Chart{
		Title:  "fetch <10 MiB> & HTTP",
		XLabel: "RTT (ms)",
		YLabel: "seconds",
		Series: []Series{
			{Name: "expertd fresh", X: x, Y: []float64{4.5, 4.7, 5.2, 6.1, 7.0}},
			{Name: "HTTP fresh", X: x, Y: []float64{4.6, 4.8, 5.3, 6.2, 7.2}},
			{Name: "floor", X: x, Y: []float64{4.24, 4.29, 4.39, 4.59, 4.79}, Dashed: true},
		},
	}
}

// svgSummary parses an SVG document strictly and returns the root element's
// name, the titles of its series groups and how many polylines it holds.
func svgSummary(t *testing.T, doc []byte) (root string, series []string, polylines int) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	var inSeries, inTitle bool
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, doc)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = e.Name.Local
				if e.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root namespace %q", e.Name.Space)
				}
			}
			switch e.Name.Local {
			case "g":
				inSeries = slices.Contains(e.Attr, xml.Attr{Name: xml.Name{Local: "class"}, Value: "series"})
			case "title":
				inTitle = inSeries
			case "polyline":
				polylines++
			}
		case xml.EndElement:
			switch e.Name.Local {
			case "g":
				inSeries = false
			case "title":
				inTitle = false
			}
		case xml.CharData:
			if inTitle {
				series = append(series, string(e))
			}
		}
	}
	return root, series, polylines
}

func TestWriteSVG(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleChart().WriteSVG(&buf); err != nil {
		t.Fatal(err)
	}
	root, series, polylines := svgSummary(t, buf.Bytes())
	if root != "svg" {
		t.Errorf("root element %q, want svg", root)
	}
	want := []string{"expertd fresh", "HTTP fresh", "floor"}
	if !slices.Equal(series, want) || polylines != len(want) {
		t.Errorf("series %q in %d polylines, want %q", series, polylines, want)
	}
	for _, s := range []string{"RTT (ms)", "seconds", "fetch &lt;10 MiB&gt; &amp; HTTP", ">300<", "stroke-dasharray"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("output lacks %q", s)
		}
	}
}

func TestWriteSVGRejects(t *testing.T) {
	for name, c := range map[string]*Chart{
		"no series": {},
		"no points": {Series: []Series{{Name: "a"}}},
		"lengths":   {Series: []Series{{Name: "a", X: []float64{1, 2}, Y: []float64{1}}}},
		"NaN":       {Series: []Series{{Name: "a", X: []float64{1}, Y: []float64{math.NaN()}}}},
	} {
		err := c.WriteSVG(io.Discard)
		if !errors.Is(err, ErrNoData) && !errors.Is(err, ErrBadSeries) {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

func TestTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		want   string // the tick labels
	}{
		{25, 300, "0 50 100 150 200 250 300"},
		{0, 7.3, "0 2 4 6 8"},
		{0, 1.05, "0.0 0.2 0.4 0.6 0.8 1.0 1.2"},
		{3, 3, "3.0 3.2 3.4 3.6 3.8 4.0"},
	} {
		ts := ticks(c.lo, c.hi)
		var got []string
		for _, v := range ts {
			got = append(got, label(v, ts))
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("ticks(%v, %v) = %q, want %q", c.lo, c.hi, got, c.want)
		}
	}
}
