package agent

import (
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// keyPos is where a key was written, and its value's raw text, so errors
// that the TOML decoder reports without a position can still name a line.
type keyPos struct {
	line int
	raw  string
	kind unstable.Kind
}

// positions maps dotted key paths ("inputs.app.include") to where they were
// written. Tables map to their header line.
type positions map[string]keyPos

func indexPositions(data []byte) positions {
	pos := positions{}
	p := unstable.Parser{}
	p.Reset(data)
	var table, indexed []string
	// Arrays of tables are also indexed with their element's position,
	// "inputs.app.processors[2].pattern", so an error in one element
	// names its line; counts holds how many elements each array has so far.
	counts := map[string]int{}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			ks, line := keyParts(&p, e)
			table = ks
			if _, seen := pos[strings.Join(ks, ".")]; !seen {
				pos[strings.Join(ks, ".")] = keyPos{line: line}
			}
			if e.Kind == unstable.ArrayTable {
				counts[strings.Join(ks, ".")]++
			}
			indexed = indexedPath(ks, counts)
			if len(indexed) > 0 && strings.Join(indexed, ".") != strings.Join(ks, ".") {
				pos[strings.Join(indexed, ".")] = keyPos{line: line}
			}
		case unstable.KeyValue:
			indexKeyValue(&p, pos, table, e)
			if strings.Join(indexed, ".") != strings.Join(table, ".") {
				indexKeyValue(&p, pos, indexed, e)
			}
		}
	}
	return pos
}

// indexedPath writes each array-of-tables part of ks with the index of its
// current element: [inputs, app, processors] -> [inputs, app, processors[1]].
func indexedPath(ks []string, counts map[string]int) []string {
	out := make([]string, len(ks))
	for i := range ks {
		out[i] = ks[i]
		if n := counts[strings.Join(ks[:i+1], ".")]; n > 0 {
			out[i] = ks[i] + "[" + strconv.Itoa(n-1) + "]"
		}
	}
	return out
}

func indexKeyValue(p *unstable.Parser, pos positions, prefix []string, kv *unstable.Node) {
	ks, line := keyParts(p, kv)
	path := append(append([]string{}, prefix...), ks...)
	v := kv.Value()
	kp := keyPos{line: line, kind: v.Kind}
	if v.Raw.Length > 0 {
		kp.raw = string(p.Raw(v.Raw))
	} else {
		kp.raw = string(v.Data)
	}
	pos[strings.Join(path, ".")] = kp
	if v.Kind == unstable.InlineTable {
		it := v.Children()
		for it.Next() {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				indexKeyValue(p, pos, path, c)
			}
		}
	}
	if v.Kind == unstable.Array {
		// processors = [{ type = "..." }, ...]: elements as key[i].
		it := v.Children()
		for i := 0; it.Next(); i++ {
			c := it.Node()
			if c.Kind != unstable.InlineTable {
				continue
			}
			elem := append(append([]string{}, path[:len(path)-1]...), path[len(path)-1]+"["+strconv.Itoa(i)+"]")
			pos[strings.Join(elem, ".")] = keyPos{line: line}
			ct := c.Children()
			for ct.Next() {
				if kv := ct.Node(); kv.Kind == unstable.KeyValue {
					indexKeyValue(p, pos, elem, kv)
				}
			}
		}
	}
}

func keyParts(p *unstable.Parser, n *unstable.Node) (parts []string, line int) {
	it := n.Key()
	for it.Next() {
		k := it.Node()
		if line == 0 && k.Raw.Length > 0 {
			line = p.Shape(k.Raw).Start.Line
		}
		parts = append(parts, string(k.Data))
	}
	return parts, line
}

// lineOf returns the line of key, or of its closest written parent.
func (ps positions) lineOf(key string) int {
	for k := key; k != ""; {
		if kp, ok := ps[k]; ok {
			return kp.line
		}
		i := strings.LastIndexByte(k, '.')
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

// findRaw returns the first key under prefix whose value was written as raw,
// for decoder errors that carry a value but no position.
func (ps positions) findRaw(prefix, raw string) (string, bool) {
	best, bestLine := "", 0
	for k, kp := range ps {
		if strings.HasPrefix(k, prefix) && kp.raw == raw && (bestLine == 0 || kp.line < bestLine) {
			best, bestLine = k, kp.line
		}
	}
	return best, bestLine > 0
}

// keyAt returns the longest key path written on line.
func (ps positions) keyAt(line int) string {
	best := ""
	for k, kp := range ps {
		if kp.line == line && len(k) > len(best) {
			best = k
		}
	}
	return best
}

// resolve corrects a decoder's key path for keys inside inline tables, which
// the decoder reports without the inline table's own key: it prefers the
// written key on the same line that ends with the same name.
func (ps positions) resolve(key string, line int) string {
	if kp, ok := ps[key]; ok && kp.line == line {
		return key
	}
	last := key
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		last = key[i+1:]
	}
	best := ""
	for k, kp := range ps {
		if kp.line == line && (k == last || strings.HasSuffix(k, "."+last)) && len(k) > len(best) {
			best = k
		}
	}
	if best == "" {
		return key
	}
	return best
}
