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
	return nil
}

type metaPage struct {
	pageSize   uint32
	pgid, txid uint64
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
	mp := metaPage{pageSize: ne.Uint32(m[8:]), pgid: ne.Uint64(m[40:]), txid: ne.Uint64(m[48:])}
	if mp.pageSize < 512 || mp.pageSize > 1<<20 || mp.pageSize&(mp.pageSize-1) != 0 {
		return metaPage{}, false
	}
	return mp, true
}
