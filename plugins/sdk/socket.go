package sdk

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"time"

	"weir.dev/weir/plugins/internal/wire"
	pb "weir.dev/weir/plugins/proto"
)

// tasksSocket is where Serve serves Tasks without gRPC (PROTOCOL.md 5.2):
// a Unix socket in a folder only this user can enter, and the token its
// first message must carry. A Tasks stream over gRPC costs each message a
// handoff to gRPC's writer and reader goroutines in both processes; here
// the sender writes and the reader reads the socket itself.
type tasksSocket struct {
	dir, path, token string
	l                net.Listener
}

// listenTasks opens the tasks socket and serves its connections with s.
func listenTasks(s *Server) (*tasksSocket, error) {
	dir, err := os.MkdirTemp("", wire.TasksSocketDir+"*")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, wire.TasksSocketName)
	l, err := net.Listen("unix", path)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	b := make([]byte, 16)
	rand.Read(b)
	ts := &tasksSocket{dir: dir, path: path, token: hex.EncodeToString(b), l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return // closed
			}
			go s.serveTasksConn(c, ts.token)
		}
	}()
	return ts, nil
}

// close stops accepting connections and removes the socket.
func (ts *tasksSocket) close() {
	ts.l.Close()
	os.RemoveAll(ts.dir)
}

// openTimeout bounds the wait for a connection's open message.
const openTimeout = 10 * time.Second

// serveTasksConn serves Tasks on a connection to the tasks socket, once
// its first message has shown the token.
func (s *Server) serveTasksConn(c net.Conn, token string) {
	defer c.Close()
	f := wire.NewFrames(c)
	c.SetReadDeadline(time.Now().Add(openTimeout))
	var open pb.TaskRequest
	if err := f.Read(&open); err != nil {
		return
	}
	got := open.GetOpen().GetToken()
	if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
		return
	}
	c.SetReadDeadline(time.Time{})
	if err := f.Write(&pb.TaskEvents{}); err != nil {
		return
	}
	s.tasks(&connTasks{f: f, ctx: context.Background()})
}

// connTasks is a Tasks stream on the tasks socket.
type connTasks struct {
	f   *wire.Frames
	ctx context.Context
}

func (c *connTasks) Context() context.Context { return c.ctx }

func (c *connTasks) Recv() (*pb.TaskRequest, error) {
	m := &pb.TaskRequest{}
	if err := c.f.Read(m); err != nil {
		return nil, err
	}
	return m, nil
}

func (c *connTasks) Send(m *pb.TaskEvents) error { return c.f.Write(m) }
