package pipeline

import "sync"

// Chunk buffers come in a few size classes so that a small file's tail does
// not pin a 256 KiB buffer, and so that buffers are reused instead of
// allocated per read.
var bufClasses = [...]int{4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20}

var bufPools [len(bufClasses)]sync.Pool

// GetBuf returns an empty buffer with capacity of at least n bytes (the
// smallest class that fits; exact size above the largest class).
func GetBuf(n int) []byte {
	for i, c := range bufClasses {
		if n <= c {
			if b, ok := bufPools[i].Get().(*[]byte); ok {
				return (*b)[:0]
			}
			return make([]byte, 0, c)
		}
	}
	return make([]byte, 0, n)
}

func putBuf(b []byte) {
	for i, c := range bufClasses {
		if cap(b) == c {
			b = b[:0]
			bufPools[i].Put(&b)
			return
		}
	}
}

// BufClass returns the capacity GetBuf(n) will have, so a reader can charge
// the memory budget before it allocates.
func BufClass(n int) int {
	for _, c := range bufClasses {
		if n <= c {
			return c
		}
	}
	return n
}
