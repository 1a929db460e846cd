package plot

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Errors returned by WriteSVG for a chart it cannot draw.
var (
	ErrNoData    = errors.New("plot: no data")
	ErrBadSeries = errors.New("plot: bad series")
)

// Series is one line: points (X[i], Y[i]) joined in order.
type Series struct {
	Name   string
	X, Y   []float64
	Color  string  // any SVG colour; empty picks the next of a palette
	Width  float64 // stroke width in pixels; 0 is 2
	Dashed bool    // a dashed line without markers, for references like a floor
}

func (s Series) width() float64 {
	if s.Width > 0 {
		return s.Width
	}
	return 2
}

// Chart is a line chart. The y axis starts at zero when every y is
// non-negative; both axes end on a round tick past the data.
type Chart struct {
	Title, XLabel, YLabel string
	Series                []Series
	Width, Height         int // pixels; 0 means 720 x 440
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"}

// Margins around the plot area, in pixels; the legend sits in the right one.
const (
	marginLeft   = 64
	marginRight  = 170
	marginTop    = 40
	marginBottom = 56
)

// WriteSVG writes c as one SVG document. Every series is a
// <g class="series"> whose <title> is its name.
func (c *Chart) WriteSVG(w io.Writer) error {
	xs, ys, err := c.ranges()
	if err != nil {
		return err
	}
	width, height := c.Width, c.Height
	if width == 0 || height == 0 {
		width, height = 720, 440
	}
	p := frame{
		left: marginLeft, top: marginTop,
		right: float64(width - marginRight), bottom: float64(height - marginBottom),
		xs: xs, ys: ys,
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	text(&b, float64(width)/2, 22, "middle", `font-size="15"`, c.Title)
	p.axes(&b, c.XLabel, c.YLabel)
	next := 0
	for i, s := range c.Series {
		color := s.Color
		if color == "" {
			color = palette[next%len(palette)]
			next++
		}
		p.series(&b, s, color)
		legend(&b, p.right+16, p.top+8+float64(i)*20, s, color)
	}
	b.WriteString("</svg>\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("plot: writing svg: %w", err)
	}
	return nil
}

// ranges checks the series and returns the tick positions of both axes.
func (c *Chart) ranges() (xs, ys []float64, err error) {
	if len(c.Series) == 0 {
		return nil, nil, ErrNoData
	}
	xlo, xhi, ylo, yhi := math.Inf(1), math.Inf(-1), 0.0, math.Inf(-1)
	for _, s := range c.Series {
		if len(s.X) == 0 || len(s.X) != len(s.Y) {
			return nil, nil, fmt.Errorf("%w: %q has %d x and %d y values", ErrBadSeries, s.Name, len(s.X), len(s.Y))
		}
		for i := range s.X {
			x, y := s.X[i], s.Y[i]
			if math.IsNaN(x) || math.IsInf(x, 0) || math.IsNaN(y) || math.IsInf(y, 0) {
				return nil, nil, fmt.Errorf("%w: %q has a value that is not finite", ErrBadSeries, s.Name)
			}
			xlo, xhi = min(xlo, x), max(xhi, x)
			ylo, yhi = min(ylo, y), max(yhi, y)
		}
	}
	return ticks(xlo, xhi), ticks(ylo, yhi), nil
}

// ticks returns about six round values (1, 2 or 5 times a power of ten
// apart) from at or below lo to at or above hi.
func ticks(lo, hi float64) []float64 {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / 6
	step := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*step >= raw {
			step *= m
			break
		}
	}
	first, last := math.Floor(lo/step+1e-9), math.Ceil(hi/step-1e-9)
	var out []float64
	for i := first; i <= last; i++ {
		out = append(out, i*step)
	}
	return out
}

// frame maps data to pixels inside the plot area.
type frame struct {
	left, top, right, bottom float64
	xs, ys                   []float64 // ticks; the first and last bound the area
}

func (f frame) px(x float64) float64 {
	lo, hi := f.xs[0], f.xs[len(f.xs)-1]
	return f.left + (x-lo)/(hi-lo)*(f.right-f.left)
}

func (f frame) py(y float64) float64 {
	lo, hi := f.ys[0], f.ys[len(f.ys)-1]
	return f.bottom - (y-lo)/(hi-lo)*(f.bottom-f.top)
}

// axes draws the grid, both axes with their tick labels, and the labels.
func (f frame) axes(b *strings.Builder, xlabel, ylabel string) {
	for _, y := range f.ys {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e0e0e0"/>`+"\n", f.left, f.py(y), f.right, f.py(y))
		text(b, f.left-6, f.py(y)+4, "end", "", label(y, f.ys))
	}
	for _, x := range f.xs {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", f.px(x), f.bottom, f.px(x), f.bottom+5)
		text(b, f.px(x), f.bottom+18, "middle", "", label(x, f.xs))
	}
	fmt.Fprintf(b, `<path d="M%.1f %.1fV%.1fH%.1f" fill="none" stroke="black"/>`+"\n", f.left, f.top, f.bottom, f.right)
	text(b, (f.left+f.right)/2, f.bottom+40, "middle", "", xlabel)
	cy := (f.top + f.bottom) / 2
	text(b, 16, cy, "middle", fmt.Sprintf(`transform="rotate(-90 16 %.1f)"`, cy), ylabel)
}

// series draws s as a polyline, with a dot on every point unless dashed.
func (f frame) series(b *strings.Builder, s Series, color string) {
	b.WriteString(`<g class="series"><title>`)
	escape(b, s.Name)
	b.WriteString("</title>\n")
	pts := make([]string, len(s.X))
	for i := range s.X {
		pts[i] = fmt.Sprintf("%.1f,%.1f", f.px(s.X[i]), f.py(s.Y[i]))
	}
	fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="%g"%s/>`+"\n", strings.Join(pts, " "), color, s.width(), dash(s.Dashed))
	if !s.Dashed {
		for i := range s.X {
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="%g" fill="%s"/>`+"\n", f.px(s.X[i]), f.py(s.Y[i]), s.width()+1, color)
		}
	}
	b.WriteString("</g>\n")
}

// legend draws one legend entry with its top left corner at (x, y).
func legend(b *strings.Builder, x, y float64, s Series, color string) {
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%g"%s/>`+"\n", x, y+6, x+24, y+6, color, s.width(), dash(s.Dashed))
	text(b, x+30, y+10, "start", "", s.Name)
}

func dash(on bool) string {
	if on {
		return ` stroke-dasharray="6 4"`
	}
	return ""
}

// label formats tick v with as many decimals as the step between ticks needs.
func label(v float64, ticks []float64) string {
	decimals := 0
	if len(ticks) > 1 {
		decimals = max(0, int(-math.Floor(math.Log10(ticks[1]-ticks[0])+1e-9)))
	}
	return strconv.FormatFloat(v, 'f', decimals, 64)
}

// text writes s, escaped, as a <text> element; attrs are extra attributes.
func text(b *strings.Builder, x, y float64, anchor, attrs, s string) {
	if s == "" {
		return
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="%s" %s>`, x, y, anchor, attrs)
	escape(b, s)
	b.WriteString("</text>\n")
}

func escape(b *strings.Builder, s string) {
	_ = xml.EscapeText(b, []byte(s)) // a strings.Builder never fails
}
