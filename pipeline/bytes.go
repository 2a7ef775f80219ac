package pipeline

import (
	"bytes"
	"unicode/utf8"
)

func indexNL(b []byte) int { return bytes.IndexByte(b, '\n') }

// appendValidUTF8 appends b to dst with each run of invalid bytes replaced
// by one U+FFFD, as bytes.ToValidUTF8 does, without a buffer of its own.
func appendValidUTF8(dst, b []byte) []byte {
	invalid := false
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			invalid = false
			continue
		}
		_, n := utf8.DecodeRune(b[i:])
		if n == 1 {
			if !invalid {
				dst = append(dst, "\uFFFD"...)
				invalid = true
			}
			i++
			continue
		}
		dst = append(dst, b[i:i+n]...)
		i += n
		invalid = false
	}
	return dst
}
