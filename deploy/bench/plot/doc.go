// Package plot draws simple line charts as standalone SVG for the benchmark
// reports under docs/: axes, ticks, labels and a legend, no dependencies.
package plot
