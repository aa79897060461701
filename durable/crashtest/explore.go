package crashtest

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// blockSize is where unflushed file content may be cut.
const blockSize = 4096

// Limits bounds the states built at one crash point: up to Prefixes
// choices of the journal prefixes (one per volume) and, for each, up to
// Cuts choices of how much unflushed content survived. Past a limit the
// choices are a random sample that always holds both extremes.
type Limits struct {
	Prefixes, Cuts int
	From           int // the first crash point to explore (0: all)
}

// State is what a power cut after the first At operations left on disk.
type State struct {
	At    int
	Acked []string // the Marks before the crash point
	Dirs  map[string]bool
	Files map[string][]byte // path -> content
	// Vols names the volumes whose folders Materialize rewrites.
	Vols []*Volume
}

// Describe lists the state's files and their sizes, for a report.
func (s *State) Describe(base string) string {
	var lines []string
	for p, data := range s.Files {
		rel, _ := filepath.Rel(base, p)
		lines = append(lines, fmt.Sprintf("  %s (%d bytes)", rel, len(data)))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// Materialize replaces the content of every volume's folder with the state.
func (s *State) Materialize() error {
	for _, v := range s.Vols {
		entries, err := os.ReadDir(v.Root)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(v.Root, e.Name())); err != nil {
				return err
			}
		}
	}
	dirs := make([]string, 0, len(s.Dirs))
	for d := range s.Dirs {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs) // parents first
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	for p, data := range s.Files {
		if err := os.WriteFile(p, data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// inode is a file's content as the model knows it.
type inode struct {
	vol     *Volume
	data    []byte
	durable int  // bytes a completed flush covered
	tainted bool // a failed flush may have dropped the rest for good
}

// dirOp is a namespace operation not yet known to be durable.
type dirOp struct {
	idx    int
	forced bool
}

// Stats counts what Explore did.
type Stats struct {
	Points, States, Sampled int // crash points, states visited, points sampled past the limits
}

// Explore calls visit with every distinct state the model allows at every
// crash point of ops (see the package comment), within lim; rnd picks the
// samples. It stops at the first error visit returns.
func Explore(ops []Op, vols []*Volume, lim Limits, rnd *rand.Rand, visit func(*State) error) (Stats, error) {
	m := &model{ops: ops, vols: vols, inodes: map[int]*inode{}, dirOps: map[*Volume][]dirOp{}, seen: map[uint64]bool{}}
	var st Stats
	for at := 0; at <= len(ops); at++ {
		if at < lim.From {
			m.apply(at)
			continue
		}
		st.Points++
		sampled, err := m.point(at, lim, rnd, func(s *State) error {
			st.States++
			return visit(s)
		})
		if sampled {
			st.Sampled++
		}
		if err != nil || at == len(ops) {
			return st, err
		}
		m.apply(at)
	}
	return st, nil
}

type model struct {
	ops    []Op
	vols   []*Volume
	inodes map[int]*inode
	dirOps map[*Volume][]dirOp // in order, per volume
	acked  []string
	seen   map[uint64]bool
}

// apply advances the model over operation i.
func (m *model) apply(i int) {
	op := m.ops[i]
	switch op.Kind {
	case Create:
		m.inodes[op.Ino] = &inode{vol: op.Vol}
		m.dirOps[op.Vol] = append(m.dirOps[op.Vol], dirOp{idx: i})
	case Mkdir, Rename, Unlink:
		m.dirOps[op.Vol] = append(m.dirOps[op.Vol], dirOp{idx: i})
	case Write:
		n := m.inode(op)
		n.data = append(n.data, op.Data...)
	case Truncate:
		n := m.inode(op)
		n.data = n.data[:min(int64(len(n.data)), op.Size)]
		n.durable = min(n.durable, len(n.data))
	case Fsync:
		m.flushFile(m.inode(op), op.Failed)
	case SyncFS:
		m.syncFS(op)
	case FsyncDir:
		if !op.Failed {
			m.force(op.Vol, func(o Op) bool { return touches(o, op.Path) })
		}
	case Mark:
		m.acked = append(m.acked, op.Label)
	}
}

// inode returns the file op is about; one that existed before the
// trace began has no recorded content.
func (m *model) inode(op Op) *inode {
	n := m.inodes[op.Ino]
	if n == nil {
		n = &inode{vol: op.Vol}
		m.inodes[op.Ino] = n
	}
	return n
}

// flushFile makes n's content durable, or after a failed flush leaves
// what it was to write lost for good.
func (m *model) flushFile(n *inode, failed bool) {
	switch {
	case failed:
		n.tainted = n.tainted || n.durable < len(n.data)
	case !n.tainted:
		n.durable = len(n.data)
	}
}

func (m *model) syncFS(op Op) {
	for _, n := range m.inodes {
		if n.vol == op.Vol {
			m.flushFile(n, op.Failed)
		}
	}
	if !op.Failed {
		m.force(op.Vol, func(Op) bool { return true })
	}
}

// touches reports whether namespace operation o changed folder dir.
func touches(o Op, dir string) bool {
	return filepath.Dir(o.Path) == dir || (o.Kind == Rename && filepath.Dir(o.To) == dir)
}

// force marks durable the operations of v that match. It does not make
// the folders holding their names durable: a folder's own entry is only
// durable once its parent is flushed, and replay drops what a folder
// lost to the crash held.
func (m *model) force(v *Volume, match func(Op) bool) {
	for i, o := range m.dirOps[v] {
		if !o.forced && match(m.ops[o.idx]) {
			m.dirOps[v][i].forced = true
		}
	}
}

// point visits the states at crash point at (after ops[:at]) and
// reports whether it had to sample.
func (m *model) point(at int, lim Limits, rnd *rand.Rand, visit func(*State) error) (bool, error) {
	unforced := make([][]int, len(m.vols))
	sizes := make([]int, len(m.vols))
	for i, v := range m.vols {
		for _, o := range m.dirOps[v] {
			if !o.forced {
				unforced[i] = append(unforced[i], o.idx)
			}
		}
		sizes[i] = len(unforced[i]) + 1
	}
	prefixes, sampled := choices(sizes, lim.Prefixes, rnd)
	for _, pv := range prefixes {
		files, dirs := m.replay(pv, unforced)
		paths, options := m.cutOptions(files)
		cuts, s := choices(lens(options), lim.Cuts, rnd)
		sampled = sampled || s
		for _, cv := range cuts {
			st := &State{At: at, Acked: m.acked, Dirs: dirs, Files: map[string][]byte{}, Vols: m.vols}
			for p, ino := range files {
				n := m.inodes[ino]
				st.Files[p] = n.data[:len(n.data)]
			}
			for i, p := range paths {
				st.Files[p] = st.Files[p][:options[i][cv[i]]]
			}
			if key := st.key(); !m.seen[key] {
				m.seen[key] = true
				if err := visit(st); err != nil {
					return sampled, err
				}
			}
		}
	}
	return sampled, nil
}

// replay builds the namespace: every forced operation and, on volume i,
// the first pv[i] of the others, in their order.
func (m *model) replay(pv []int, unforced [][]int) (files map[string]int, dirs map[string]bool) {
	var idxs []int
	for i, v := range m.vols {
		for _, o := range m.dirOps[v] {
			if o.forced {
				idxs = append(idxs, o.idx)
			}
		}
		idxs = append(idxs, unforced[i][:pv[i]]...)
	}
	sort.Ints(idxs)
	files, dirs = map[string]int{}, map[string]bool{}
	for _, v := range m.vols {
		dirs[v.Root] = true
	}
	for _, i := range idxs {
		op := m.ops[i]
		// An entry in a folder the crash lost is lost with it.
		if !dirs[filepath.Dir(op.Path)] || (op.Kind == Rename && !dirs[filepath.Dir(op.To)]) {
			if op.Kind == Rename {
				delete(files, op.Path)
			}
			continue
		}
		switch op.Kind {
		case Mkdir:
			dirs[op.Path] = true
		case Create:
			files[op.Path] = op.Ino
		case Rename:
			delete(files, op.Path)
			files[op.To] = op.Ino
		case Unlink:
			delete(files, op.Path)
		}
	}
	return files, dirs
}

// cutOptions lists the visible files with unflushed content and, for
// each, the lengths it may have after the crash, shortest first.
func (m *model) cutOptions(files map[string]int) ([]string, [][]int) {
	var paths []string
	for p, ino := range files {
		if n := m.inodes[ino]; n.durable < len(n.data) {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	options := make([][]int, len(paths))
	for i, p := range paths {
		n := m.inodes[files[p]]
		opts := []int{n.durable}
		for b := (n.durable/blockSize + 1) * blockSize; b < len(n.data); b += blockSize {
			opts = append(opts, b)
		}
		options[i] = append(opts, len(n.data))
	}
	return paths, options
}

// lens returns how many choices each file has, for choices.
func lens(options [][]int) []int {
	sizes := make([]int, len(options))
	for i, o := range options {
		sizes[i] = len(o)
	}
	return sizes
}

// choices returns every vector v with 0 <= v[i] < sizes[i] when there
// are at most limit, else a sample: all lowest, all highest, then each
// coordinate through all its values with the others all lowest or all
// highest (a sum, not a product: one volume's every journal prefix
// against the others' extremes), then random ones up to limit. It
// reports whether it sampled.
func choices(sizes []int, limit int, rnd *rand.Rand) ([][]int, bool) {
	total := 1
	for _, s := range sizes {
		if total *= s; total > limit {
			break
		}
	}
	if total <= limit {
		out := [][]int{make([]int, len(sizes))}
		for v := next(out[0], sizes); v != nil; v = next(v, sizes) {
			out = append(out, v)
		}
		return out, false
	}
	low, high := make([]int, len(sizes)), make([]int, len(sizes))
	for i, s := range sizes {
		high[i] = s - 1
	}
	out := [][]int{low, high}
	for i, s := range sizes {
		for x := 1; x < s-1; x++ {
			for _, base := range [][]int{low, high} {
				v := slices.Clone(base)
				v[i] = x
				out = append(out, v)
			}
		}
	}
	for len(out) < limit {
		v := make([]int, len(sizes))
		for i, s := range sizes {
			v[i] = rnd.IntN(s)
		}
		out = append(out, v)
	}
	return out, true
}

// next returns the vector after v in mixed-radix order, nil after the last.
func next(v, sizes []int) []int {
	n := append([]int(nil), v...)
	for i := range n {
		if n[i]++; n[i] < sizes[i] {
			return n
		}
		n[i] = 0
	}
	return nil
}

// key identifies a state and how much was acknowledged before it.
func (s *State) key() uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d\n", len(s.Acked))
	for _, d := range sortedKeys(s.Dirs) {
		fmt.Fprintf(h, "d %s\n", d)
	}
	for _, p := range sortedKeys(s.Files) {
		fmt.Fprintf(h, "f %s %d\n", p, len(s.Files[p]))
		h.Write(s.Files[p])
	}
	return h.Sum64()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
