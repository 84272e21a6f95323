package jobstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// checkFile looks at a store file before bbolt maps it. bbolt trusts its
// meta pages: a file cut short inside its data is mapped past its end,
// and the first read there kills the process with SIGBUS before any error
// can be returned. So the file's size is compared with the high-water
// mark of the newest valid meta page first. A file with no valid meta
// page is left to bbolt, which refuses it with an error.
//
// bbolt's meta page (go.etcd.io/bbolt, page 0 and page 1): a 16-byte page
// header, then magic, version, page size and flags (4 bytes each), the
// root bucket (16), the freelist page, the high-water mark (pages in use)
// and the transaction ID (8 each), and an FNV-64a checksum of the 56
// bytes before it. Integers are in the machine's byte order; stores are
// not moved between machines of different orders.
func checkFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("jobstore: open %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return nil
	}
	best, found := metaPage{}, false
	off := int64(0)
	for i := range 2 {
		m, ok := readMeta(f, off)
		if i == 0 && ok {
			off = int64(m.pageSize)
		} else if i == 0 {
			off = 4096 // bbolt's usual page size, to try the second copy
		}
		if ok && (!found || m.txid > best.txid) {
			best, found = m, true
		}
	}
	if !found {
		return nil
	}
	if need := int64(best.pgid) * int64(best.pageSize); st.Size() < need {
		return fmt.Errorf("%w: %s is %d bytes, but its meta page says %d pages of %d bytes (%d bytes): the file was cut short",
			ErrCorrupt, path, st.Size(), best.pgid, best.pageSize, need)
	}
	w := &pageWalk{f: f, meta: best, seen: map[uint64]bool{0: true, 1: true}}
	if err := w.tree(best.root, 0); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
	}
	if err := w.freelist(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
	}
	return nil
}

type metaPage struct {
	pageSize                     uint32
	root, freelistID, pgid, txid uint64
}

// pageWalk checks the structure of every page bbolt can reach from a
// meta page: each page within the file and reached once, its elements
// within it, the free list naming no page in use. bbolt assumes all of
// it; a damaged page header (an element count, an overflow) would make it
// read out of bounds, or grow the file without end at the next commit.
// Values are not checked here: the store's checksums do that.
type pageWalk struct {
	f    io.ReaderAt
	meta metaPage
	seen map[uint64]bool
}

const (
	pageHeader     = 16
	elemSize       = 16
	branchPage     = 0x01
	leafPage       = 0x02
	freelistPage   = 0x10
	bucketLeafFlag = 0x01
	noFreelist     = 0xffffffffffffffff
	maxDepth       = 64
)

// page reads page id with its overflow pages.
func (w *pageWalk) page(id uint64) ([]byte, error) {
	if id < 2 || id >= w.meta.pgid {
		return nil, fmt.Errorf("page %d is out of bounds (%d pages)", id, w.meta.pgid)
	}
	if w.seen[id] {
		return nil, fmt.Errorf("page %d is reached twice", id)
	}
	ps := int64(w.meta.pageSize)
	var h [pageHeader]byte
	if _, err := w.f.ReadAt(h[:], int64(id)*ps); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	ne := binary.NativeEndian
	if got := ne.Uint64(h[0:]); got != id {
		return nil, fmt.Errorf("page %d says it is page %d", id, got)
	}
	overflow := uint64(ne.Uint32(h[12:]))
	if id+overflow >= w.meta.pgid {
		return nil, fmt.Errorf("page %d overflows past the end (%d more pages)", id, overflow)
	}
	for k := id; k <= id+overflow; k++ {
		if w.seen[k] {
			return nil, fmt.Errorf("page %d is reached twice", k)
		}
		w.seen[k] = true
	}
	b := make([]byte, int64(1+overflow)*ps)
	if _, err := w.f.ReadAt(b, int64(id)*ps); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	return b, nil
}

// tree checks the B+tree rooted at page id.
func (w *pageWalk) tree(id uint64, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("page %d: tree deeper than %d", id, maxDepth)
	}
	b, err := w.page(id)
	if err != nil {
		return err
	}
	return w.node(b, id, depth)
}

// node checks one branch or leaf page, b, and what it leads to.
func (w *pageWalk) node(b []byte, id uint64, depth int) error {
	ne := binary.NativeEndian
	flags, count := ne.Uint16(b[8:]), int(ne.Uint16(b[10:]))
	if pageHeader+count*elemSize > len(b) {
		return fmt.Errorf("page %d: %d elements do not fit", id, count)
	}
	for i := range count {
		e := pageHeader + i*elemSize
		switch flags {
		case branchPage:
			pos, ksize, child := int(ne.Uint32(b[e:])), int(ne.Uint32(b[e+4:])), ne.Uint64(b[e+8:])
			if ksize == 0 || e+pos+ksize > len(b) || e+pos < e {
				return fmt.Errorf("page %d: element %d is out of its page", id, i)
			}
			if err := w.tree(child, depth+1); err != nil {
				return err
			}
		case leafPage:
			lf, pos, ksize, vsize := ne.Uint32(b[e:]), int(ne.Uint32(b[e+4:])), int(ne.Uint32(b[e+8:])), int(ne.Uint32(b[e+12:]))
			if ksize == 0 || e+pos+ksize+vsize > len(b) || e+pos < e {
				return fmt.Errorf("page %d: element %d is out of its page", id, i)
			}
			if lf&bucketLeafFlag == 0 {
				continue
			}
			v := b[e+pos+ksize : e+pos+ksize+vsize]
			if len(v) < 16 {
				return fmt.Errorf("page %d: bucket %d has a short header", id, i)
			}
			if root := ne.Uint64(v); root != 0 {
				if err := w.tree(root, depth+1); err != nil {
					return err
				}
			} else if len(v) < 16+pageHeader {
				return fmt.Errorf("page %d: inline bucket %d is cut", id, i)
			} else if err := w.node(v[16:], id, depth+1); err != nil {
				return err
			}
		default:
			return fmt.Errorf("page %d: not a branch or leaf page (flags %#x)", id, flags)
		}
	}
	return nil
}

// freelist checks that the free list names only pages not in use.
func (w *pageWalk) freelist() error {
	if w.meta.freelistID == noFreelist {
		return nil // not synced: bbolt rebuilds it by walking the pages
	}
	b, err := w.page(w.meta.freelistID)
	if err != nil {
		return fmt.Errorf("free list: %w", err)
	}
	ne := binary.NativeEndian
	if ne.Uint16(b[8:]) != freelistPage {
		return fmt.Errorf("free list: page %d is not a free list page", w.meta.freelistID)
	}
	off, n := pageHeader, uint64(ne.Uint16(b[10:]))
	if n == 0xffff {
		n, off = ne.Uint64(b[pageHeader:]), pageHeader+8
	}
	if n > uint64(len(b)-off)/8 {
		return fmt.Errorf("free list: %d entries do not fit", n)
	}
	for i := range int(n) {
		id := ne.Uint64(b[off+8*i:])
		if id < 2 || id >= w.meta.pgid || w.seen[id] {
			return fmt.Errorf("free list: page %d is not free", id)
		}
	}
	return nil
}

const (
	boltMagic   = 0xED0CDAED
	boltVersion = 2
)

func readMeta(r io.ReaderAt, off int64) (metaPage, bool) {
	var b [16 + 64]byte
	if _, err := r.ReadAt(b[:], off); err != nil {
		return metaPage{}, false
	}
	m := b[16:]
	ne := binary.NativeEndian
	if ne.Uint32(m[0:]) != boltMagic || ne.Uint32(m[4:]) != boltVersion {
		return metaPage{}, false
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != ne.Uint64(m[56:]) {
		return metaPage{}, false
	}
	mp := metaPage{pageSize: ne.Uint32(m[8:]), root: ne.Uint64(m[16:]), freelistID: ne.Uint64(m[32:]), pgid: ne.Uint64(m[40:]), txid: ne.Uint64(m[48:])}
	if mp.pageSize < 512 || mp.pageSize > 1<<20 || mp.pageSize&(mp.pageSize-1) != 0 {
		return metaPage{}, false
	}
	return mp, true
}
