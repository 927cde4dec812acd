package artifact_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"weir.dev/weir/runtime/artifact"
)

// BenchmarkPut measures storing new content (hash, write, fsync, rename);
// go test reports MB/s. Each iteration changes the first bytes so nothing is
// de-duplicated.
func BenchmarkPut(b *testing.B) {
	for _, size := range []int{1 << 20, 100 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			s, err := artifact.Open(filepath.Join(b.TempDir(), "artifacts"))
			if err != nil {
				b.Fatal(err)
			}
			data := make([]byte, size)
			r := rand.New(rand.NewPCG(1, 2))
			for i := range data {
				data[i] = byte(r.Uint32())
			}
			b.SetBytes(int64(size))
			for i := 0; b.Loop(); i++ {
				binary.LittleEndian.PutUint64(data, uint64(i))
				if _, _, err := s.Put(bytes.NewReader(data)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
