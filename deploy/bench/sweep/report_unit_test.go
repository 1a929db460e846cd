package sweep

import (
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReport writes the report of made-up points, so that the files
// TestSweep leaves are checked without its minutes of simulation.
func TestReport(t *testing.T) {
	var points []point
	for i, rtt := range rtts {
		l := link{RTT: rtt, BitsPerSecond: bandwidth}
		f := l.floor(expertSize)
		d := func(x float64) time.Duration { return time.Duration(float64(f) * (x + float64(i)/100)) }
		points = append(points, point{Link: l, Floor: f, Fetch: times{d(1.10), d(1.05)}, HTTP: times{d(1.00), d(1.00)}})
	}
	dir := t.TempDir()
	if err := writeReport(dir, points, 3); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "sweep.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| 25 | 4.244 | fresh | 4.669 | 1.100 | 4.244 | 1.000 | 1.100 |",
		"| 300 | 4.794 | warm |",
		"fresh 1.120, warm 1.070 (met)",
		"median of 3 runs",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("sweep.md lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(string(md), "slower than the first") {
		t.Errorf("sweep.md has the warm note, but no point is slower warm:\n%s", md)
	}
	points[4].Fetch.Warm, points[4].HTTP.Warm = 2*points[4].Fetch.Fresh, 2*points[4].HTTP.Fresh
	if note := warmNote(points); !strings.HasPrefix(note, "At 300 ms the second transfer") {
		t.Errorf("warm note %q", note)
	}
	f, err := os.Open(filepath.Join(dir, "fetch-vs-rtt.svg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var titles []string
	d := xml.NewDecoder(f)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("svg: %v", err)
		}
		if e, ok := tok.(xml.StartElement); ok && e.Name.Local == "title" {
			var s string
			if err := d.DecodeElement(&s, &e); err != nil {
				t.Fatal(err)
			}
			titles = append(titles, s)
		}
	}
	if got := strings.Join(titles, ", "); got != "expertd fresh, expertd warm, HTTP fresh, HTTP warm, floor" {
		t.Errorf("svg series: %s", got)
	}
}
