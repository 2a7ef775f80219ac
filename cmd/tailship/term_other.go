//go:build !linux

package main

import "io"

// terminalWidth: outside Linux, top prints plain text snapshots.
func terminalWidth(io.Writer) (int, bool) { return 0, false }
