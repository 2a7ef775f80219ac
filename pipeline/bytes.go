package pipeline

import "bytes"

func indexNL(b []byte) int { return bytes.IndexByte(b, '\n') }
