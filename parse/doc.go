// Package parse owns turning a raw line into fields: the json, logfmt,
// regex, cri, docker and syslog parsers, the reassembly of lines that
// container runtimes split into partial pieces, the joining of multiline
// records ([inputs.NAME.multiline]: patterns and the java, go and python
// presets), and reading the event time from a parsed field.
//
// Parsers run on the pipeline's worker pool, one instance per worker
// (pipeline.ParserSpec.New), so each keeps its scratch state (a fastjson
// parser, a key cache) without locking. Values go into the chunk's
// pipeline.Arena as *pipeline.Text and *pipeline.RawJSON so that parsing
// allocates nothing per field. Reassembly and multiline joining need the
// lines of a source in order, which the pool does not give; they run in
// the pipeline's ordered stage (pipeline.ParserSpec.NewOrdered), after the
// per-source reorder, partial lines first.
//
// Importing the package registers the parsers for `parser = "..."` and
// the multiline stage.
package parse
