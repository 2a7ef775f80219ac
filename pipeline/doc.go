// Package pipeline is the shared vocabulary and the engine between inputs and
// outputs: chunks and events, the Input/Output/Processor seams and their
// registry, the worker pool that parses chunks in parallel, the per-source
// reorder step that keeps file order, the processors of inputs and outputs
// and the windows of windowed ones (aggregate), the fan-out to each output's
// bounded queue (with content routing: an output with a when condition or
// processors of its own gets a view, a copy of each chunk's events), the
// batcher and retry loop that drive an output (with max_in_flight batches at
// once, partial results from receivers that accept part of a batch, and the
// dead-letter file for what is rejected for good), and the ordered
// acknowledgements that turn settled chunks into committed offsets.
//
// Data flows one way: an input emits chunks, the pool processes them, the
// outputs deliver them. Acknowledgements flow back through Source.commit, a
// callback the input supplied, so this package imports no input or output.
package pipeline
