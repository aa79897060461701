package queue

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"postline/durable"
)

// The record of removed IDs keeps two generations of bounded size: the
// newest IDs are found, the oldest are forgotten, and nothing else grows.
func TestRemovedLogRotates(t *testing.T) {
	dir := t.TempDir()
	l, err := openRemovedLog(durable.OS{}, filepath.Join(dir, "removed.log"), filepath.Join(dir, "removed.old.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	const idLen = 16
	n := 2*rotateRemovedAt/(idLen+1) + 100 // a bit more than two generations
	for i := range n {
		if err := l.add(fmt.Sprintf("%016d", i)); err != nil {
			t.Fatal(err)
		}
	}
	first, _ := l.has(fmt.Sprintf("%016d", 0))
	last, _ := l.has(fmt.Sprintf("%016d", n-1))
	middle, _ := l.has(fmt.Sprintf("%016d", n/2+100))
	if first || !last || !middle {
		t.Errorf("first %v (want forgotten), middle %v, last %v", first, middle, last)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if info, _ := e.Info(); info.Size() > rotateRemovedAt+idLen+1 {
			t.Errorf("%s has %d bytes", e.Name(), info.Size())
		}
	}
}
