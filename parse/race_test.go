//go:build race

package parse_test

// The race detector makes sync.Pool drop items at random (regexp pools its
// matchers), so allocation counts mean nothing under it.
const raceEnabled = true
