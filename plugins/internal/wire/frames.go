package wire

import (
	"bufio"
	"net"

	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// MaxFrame is the largest message a tasks socket carries, as gRPC's
// default limit on the Tasks stream.
const MaxFrame = 4 << 20

// The SDK's tasks socket is TasksSocketName in a folder of the temporary
// folder whose name starts with TasksSocketDir; the host removes such a
// socket when its plugin died without removing it.
const (
	TasksSocketDir  = "weir-plugin-"
	TasksSocketName = "tasks.sock"
)

// Frames reads and writes the messages of a tasks socket (PROTOCOL.md 5.2):
// each is preceded by its length as a varint, as protodelim writes them.
// One goroutine may read while another writes; each side needs its own
// serialization.
type Frames struct {
	c   net.Conn
	r   *bufio.Reader
	buf []byte
}

// NewFrames reads and writes messages on c.
func NewFrames(c net.Conn) *Frames {
	return &Frames{c: c, r: bufio.NewReaderSize(c, 64<<10)}
}

// Conn is the connection the frames go on.
func (f *Frames) Conn() net.Conn { return f.c }

// Read reads the next message into m; io.EOF at a message's boundary
// means the other side closed the connection.
func (f *Frames) Read(m proto.Message) error {
	return protodelim.UnmarshalOptions{MaxSize: MaxFrame}.UnmarshalFrom(f.r, m)
}

// Write writes m with one system call.
func (f *Frames) Write(m proto.Message) error {
	o := proto.MarshalOptions{UseCachedSize: true}
	n := o.Size(m)
	b, err := o.MarshalAppend(protowire.AppendVarint(f.buf[:0], uint64(n)), m)
	if err != nil {
		return err
	}
	if cap(b) <= 64<<10 {
		f.buf = b[:0] // keep a small buffer for the next message
	}
	_, err = f.c.Write(b)
	return err
}
