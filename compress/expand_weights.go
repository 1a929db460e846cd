package compress

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/expertd/expertd/compress/safetensors"
)

// Expand decodes tensors in parallel: the calling goroutine reads the
// container in order and hands each tensor, its payload read whole and
// checked against its checksum, to a bounded pool of decoders; they
// decode and convert chunks of elements into a fixed set of buffers,
// which one writing goroutine writes at their place in the file
// (safetensors.WriterAt; the kernel serializes writes to a file anyway).
// So the file holds the bytes a sequential decoder writes, and memory is
// bounded, not proportional to the tensors: the chunk buffers (within
// decodeScratch), at most decodeAhead bytes of payload read ahead, and a
// payload larger than decodeAhead/2 is decoded by the reading goroutine
// itself as a stream, in its window.

// ChunkElements is how many elements a decoder decodes, converts and
// writes at a time (1 MiB of float32): its memory does not grow with the
// tensors.
const ChunkElements = 1 << 18

const (
	// decodeScratch bounds the chunk buffers: a float32 chunk and its
	// conversion to the output dtype each.
	decodeScratch = 24 << 20
	// decodeAhead bounds the payloads read ahead for the decoders.
	decodeAhead = 16 << 20
)

// weightsJob is one tensor to decode from its whole payload (readPad zero
// bytes after it).
type weightsJob struct {
	i       int
	t       *TensorHeader
	payload []byte
	taken   int64 // of the payload budget
}

// chunkBuf is a chunk of one tensor on its way to the file.
type chunkBuf struct {
	vals []float32
	out  []byte // conversion of vals, unless F32
	i    int    // tensor
	c    safetensors.Chunk
}

// weightsWriter decodes the tensors of a container into a weights file.
type weightsWriter struct {
	wa          *safetensors.WriterAt
	base        *safetensors.Dir // nil unless a residual
	total       int64
	progress    func(done, total int64)
	streamAbove int64 // payloads larger are decoded as a stream

	free    chan *chunkBuf // buffers not in use
	written chan *chunkBuf // buffers for the writer
	ahead   *budget        // payload bytes read ahead
	spare   chan []byte    // payload buffers to reuse

	emu   sync.Mutex   // guards err
	first atomic.Int64 // lowest tensor index that failed, or noFailure
	err   error        // its error
}

const noFailure = 1<<63 - 1

func writeWeights(f *os.File, cr *Reader, h *Header, plan *safetensors.Plan, base *safetensors.Dir, total int64, o ExpandOptions) error {
	wa, err := plan.NewWriterAt(f)
	if err != nil {
		return err
	}
	var fpErr chan error
	if base != nil { // the base's fingerprint, in tensor order, beside the decoding
		fpErr = make(chan error, 1)
		go func() { fpErr <- checkFingerprint(base, h) }()
	}
	w := &weightsWriter{wa: wa, base: base, total: total, progress: o.Progress, streamAbove: o.streamAbove}
	if w.streamAbove == 0 {
		w.streamAbove = decodeAhead / 2
	}
	w.first.Store(noFailure)
	w.run(cr, h, chunkBytes(plan))
	err = w.err
	if fpErr != nil {
		if ferr := <-fpErr; err == nil {
			err = ferr
		}
	}
	if err != nil {
		return err
	}
	return f.Sync()
}

// run reads the tensors in order and decodes them on the pool until the
// end or the first error, and waits for every chunk to be written; per is
// the memory of a chunk buffer.
func (w *weightsWriter) run(cr *Reader, h *Header, per int64) {
	// Decoders (at most GOMAXPROCS) and two buffers each, and four more
	// (one the writer writes, the others queued), as the budget allows:
	// on a busy machine, where a goroutine that waits may wait for a time
	// slice, decoders and writer wait on each other only when one of them
	// falls a few chunks behind.
	workers := poolSize(len(h.Tensors), 2*per, decodeScratch-4*per)
	nbuf := int(min(int64(2*workers+4), max(decodeScratch/per, 4)))
	w.free, w.written = make(chan *chunkBuf, nbuf), make(chan *chunkBuf, nbuf)
	for range nbuf {
		w.free <- &chunkBuf{}
	}
	w.ahead, w.spare = newBudget(decodeAhead), make(chan []byte, workers+1)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		w.writeChunks()
	}()
	jobs := make(chan weightsJob)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				if !w.failedBefore(j.i) {
					w.fail(j.i, w.decode(j))
				}
				w.ahead.give(j.taken)
				w.putPayload(j.payload)
			}
		})
	}
	w.read(cr, jobs)
	close(jobs)
	wg.Wait()
	close(w.written)
	<-writerDone
}

// read reads the tensors of cr in order: payloads for the decoders, or a
// large one decoded here.
func (w *weightsWriter) read(cr *Reader, jobs chan<- weightsJob) {
	for i := 0; w.first.Load() == noFailure; i++ {
		t, err := cr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			w.fail(i, err)
			return
		}
		if t.Bytes > w.streamAbove { // too large to read ahead
			w.fail(i, w.stream(cr, i, t))
			continue
		}
		j := weightsJob{i: i, t: t, taken: w.ahead.take(t.Bytes + readPad)}
		if j.payload, err = cr.payload(w.getPayload(int(t.Bytes) + readPad)); err != nil {
			w.ahead.give(j.taken)
			w.fail(i, err)
			return
		}
		jobs <- j
	}
}

// writeChunks writes the chunks it is sent until the channel is closed,
// and reports the progress; after an error it only frees them.
func (w *weightsWriter) writeChunks() {
	var done int64
	for b := range w.written {
		if w.first.Load() == noFailure {
			if err := w.wa.Write(b.c); err != nil {
				w.fail(b.i, err)
			} else if done += int64(len(b.vals)); w.progress != nil {
				w.progress(done, w.total)
			}
		}
		w.free <- b
	}
}

// chunkBytes is the memory of a chunk buffer for the weights of plan:
// float32 values and, unless every tensor is written as F32 (on a
// little-endian machine, which writes those values as they are), their
// conversion (at most 8 bytes an element, F64).
func chunkBytes(plan *safetensors.Plan) int64 {
	conv := int64(0)
	for _, t := range plan.Tensors() {
		if t.DType != safetensors.F32 {
			conv = max(conv, int64(t.DType.Size()))
		}
	}
	return ChunkElements * (4 + conv)
}

// chunk takes a free buffer for up to n elements of tensor t, filled with
// the tensor's elements from start: from the base of a residual, else
// with its offset.
func (w *weightsWriter) chunk(t *TensorHeader, start, n int64) (*chunkBuf, error) {
	b := <-w.free
	if b.vals == nil {
		b.vals = make([]float32, ChunkElements)
	}
	b.vals = b.vals[:min(n, ChunkElements)]
	if w.base == nil {
		fillOffset(b.vals, t.Offset)
	} else if err := w.base.ReadFloat32At(t.Name, start, b.vals); err != nil {
		w.free <- b
		return nil, fmt.Errorf("base: %w", err)
	}
	return b, nil
}

// send converts the decoded chunk b, elements [start, ...) of tensor i,
// and hands it to the writer.
func (w *weightsWriter) send(b *chunkBuf, i int, start int64) error {
	var err error
	if b.c, b.out, err = w.wa.Convert(i, start, b.vals, b.out); err != nil {
		w.free <- b
		return err
	}
	b.i = i
	w.written <- b
	return nil
}

// decode decodes job j from its payload in memory.
func (w *weightsWriter) decode(j weightsJob) error {
	t := j.t
	var d tensorDecoder
	if err := d.init(newBitReader(j.payload, int(t.Bytes)), t.Elements(), t.code(nil), t.Bytes, t.Offset, t.Scale, w.base != nil); err != nil {
		return fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	for start, n := int64(0), t.Elements(); start < n && !w.failedBefore(j.i); {
		b, err := w.chunk(t, start, n-start)
		if err != nil {
			return err
		}
		err = d.decode(b.vals)
		if err == nil && start+int64(len(b.vals)) == n {
			err = d.finish()
		}
		if err != nil {
			w.free <- b
			return fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		next := start + int64(len(b.vals))
		if err := w.send(b, j.i, start); err != nil {
			return err
		}
		start = next
	}
	return nil
}

// stream decodes the current tensor of cr, number i, as a stream.
func (w *weightsWriter) stream(cr *Reader, i int, t *TensorHeader) error {
	for start, n := int64(0), t.Elements(); start < n && !w.failedBefore(i); {
		b, err := w.chunk(t, start, n-start)
		if err != nil {
			return err
		}
		if w.base != nil {
			err = cr.AddValues(b.vals)
		} else {
			err = cr.ReadValues(b.vals) // fills the offset itself
		}
		if err != nil {
			w.free <- b
			return err
		}
		next := start + int64(len(b.vals))
		if err := w.send(b, i, start); err != nil {
			return err
		}
		start = next
	}
	return nil
}

// fail records err (if any) as the error of tensor i. The error of the
// lowest index is the one returned, as a sequential decoder would: a
// tensor stops only for an error before it.
func (w *weightsWriter) fail(i int, err error) {
	if err == nil {
		return
	}
	w.emu.Lock()
	if int64(i) < w.first.Load() {
		w.first.Store(int64(i))
		w.err = err
	}
	w.emu.Unlock()
}

// failedBefore reports whether a tensor before i failed.
func (w *weightsWriter) failedBefore(i int) bool { return w.first.Load() < int64(i) }

func (w *weightsWriter) getPayload(n int) []byte {
	select {
	case b := <-w.spare:
		if cap(b) >= n {
			return b[:n]
		}
	default:
	}
	return make([]byte, n)
}

func (w *weightsWriter) putPayload(b []byte) {
	select {
	case w.spare <- b:
	default:
	}
}

func fillOffset(dst []float32, off float32) {
	if off == 0 {
		clear(dst)
		return
	}
	for i := range dst {
		dst[i] = off
	}
}

// checkFingerprint reads the base tensors of h in order and compares
// their fingerprint with the one h was compressed against.
func checkFingerprint(base *safetensors.Dir, h *Header) error {
	fp := newFingerprint()
	vals := make([]float32, ChunkElements)
	for k := range h.Tensors {
		t := &h.Tensors[k]
		fp.begin(t.Name)
		for start, n := int64(0), t.Elements(); start < n; {
			chunk := vals[:min(n-start, ChunkElements)]
			if err := base.ReadFloat32At(t.Name, start, chunk); err != nil {
				return fmt.Errorf("base: %w", err)
			}
			fp.write(chunk)
			start += int64(len(chunk))
		}
		fp.end()
	}
	if fp.sum() != h.Base {
		return fmt.Errorf("%w: base fingerprint %s, container wants %s", ErrBase, fp.sum(), h.Base)
	}
	return nil
}
