package gaffer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// Kept logs: the log of every failed attempt (and of successful ones with
// Config.KeepSuccessLogs) outlives its job's folder, at
//
//	<work dir>/logs/<job>/<epoch>.<seq>.log
//
// capped at Config.LogLimit bytes: a longer log keeps its end, after a
// line saying how much was cut. The attempt's record in the store
// (jobstore.Attempt.Log) names the file.

func keptLogPath(workDir string, a attempt) string {
	return filepath.Join(workDir, "logs", strconv.FormatUint(uint64(a.job), 10),
		strconv.FormatUint(a.epoch, 10)+"."+strconv.FormatUint(a.seq, 10)+".log")
}

func cutLine(cut, limit int64) string {
	return fmt.Sprintf("[gaffer: the first %d bytes of this log were cut; Config.LogLimit keeps the last %d]\n", cut, limit)
}

// keepLogFile keeps the log file src of attempt a: it is moved, or, past
// limit, its end is copied. It returns the kept file's path.
func keepLogFile(workDir string, a attempt, src string, limit int64) (string, error) {
	f, err := os.Open(src)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil // the attempt wrote no log
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	dst := keptLogPath(workDir, a)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	if st.Size() <= limit {
		return dst, os.Rename(src, dst)
	}
	cut := st.Size() - limit
	if _, err := f.Seek(cut, io.SeekStart); err != nil {
		return "", err
	}
	out, err := os.Create(dst)
	if err != nil {
		return "", err
	}
	_, err = io.WriteString(out, cutLine(cut, limit))
	if err == nil {
		_, err = io.Copy(out, f)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return dst, err
}

// keepLogBytes keeps b, the end of attempt a's log after cut bytes were
// dropped, and returns the kept file's path. It keeps at most limit bytes
// of b: the buffer a transport holds may be longer (it keeps at least the
// tail an error shows).
func keepLogBytes(workDir string, a attempt, b []byte, cut, limit int64) (string, error) {
	if over := int64(len(b)) - limit; over > 0 {
		b, cut = b[over:], cut+over
	}
	dst := keptLogPath(workDir, a)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	if cut > 0 {
		b = append([]byte(cutLine(cut, limit)), b...)
	}
	return dst, os.WriteFile(dst, b, 0o644)
}
