//go:build race

package file

// raceEnabled: the race detector slows the 10,000-file scan about fifteen
// times; that test runs without it (.ci/run runs it so).
const raceEnabled = true
