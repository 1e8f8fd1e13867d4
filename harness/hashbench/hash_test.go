package hashbench

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"math/rand/v2"
	"testing"

	"github.com/zeebo/blake3"
)

var sizes = []int{1 << 20, 64 << 20}

var hashes = []struct {
	name string
	new  func() hash.Hash
}{
	{"sha256", sha256.New},
	{"blake3", func() hash.Hash { return blake3.New() }},
}

// buffer returns n bytes of pseudo-random data.
func buffer(n int) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{1}))
	buf := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			buf[i+j] = byte(v >> (8 * j))
		}
	}
	return buf
}

// BenchmarkHash hashes whole buffers of each size, one digest per buffer,
// the way a fingerprint digests a whole session file.
func BenchmarkHash(b *testing.B) {
	for _, size := range sizes {
		buf := buffer(size)
		for _, h := range hashes {
			b.Run(fmt.Sprintf("%s/%dMiB", h.name, size>>20), func(b *testing.B) {
				b.SetBytes(int64(size))
				d := h.new()
				var sum []byte
				for b.Loop() {
					d.Reset()
					d.Write(buf)
					sum = d.Sum(sum[:0])
				}
			})
		}
	}
}

// TestHashesAgreeWithKnownAnswers guards the benchmark against measuring a
// broken hash: both produce their published digests of "abc".
func TestHashesAgreeWithKnownAnswers(t *testing.T) {
	want := map[string]string{
		"sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		"blake3": "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
	}
	for _, h := range hashes {
		d := h.new()
		d.Write([]byte("abc"))
		if got := fmt.Sprintf("%x", d.Sum(nil)); got != want[h.name] {
			t.Errorf("%s(abc) = %s, want %s", h.name, got, want[h.name])
		}
	}
}
