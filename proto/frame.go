package pb

import (
	"encoding/binary"
	"io"

	gproto "google.golang.org/protobuf/proto"
)

// WriteFrame writes m to w with a uvarint length prefix, the framing of
// every expertd stream protocol, marshalling into buf (reused, returned
// grown) so a stream writes each frame in one call.
func WriteFrame(w io.Writer, m gproto.Message, buf []byte) ([]byte, error) {
	size := gproto.Size(m)
	buf = binary.AppendUvarint(buf[:0], uint64(size))
	buf, err := gproto.MarshalOptions{UseCachedSize: true}.MarshalAppend(buf, m)
	if err != nil {
		return buf, err
	}
	_, err = w.Write(buf)
	return buf, err
}
