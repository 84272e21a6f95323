// Package toilcompare runs Toil's own bin packer (from an installed Toil,
// e.g. Debian's `toil` package) on gaffer's inputs, to check that
// scaler.BinPack makes the same decisions and that a simulated workload
// costs no more node-hours with gaffer's packer than with Toil's.
//
// Nothing here is a port of Toil: toil_binpack.py imports Toil and calls
// toil.provisioners.clusterScaler.binPacking. Toil talks to this package
// over a pipe, one JSON line per request.
package toilcompare

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/gafferhq/gaffer/scaler"
)

//go:embed toil_binpack.py
var driver []byte

// ErrNoToil is matched by the error from Start when Python cannot import
// Toil.
var ErrNoToil = errors.New("toilcompare: toil is not installed for this python")

// DefaultPython is the interpreter Start uses when GAFFER_TOIL_PYTHON is
// unset: Debian's, where `apt-get install toil` puts the package.
const DefaultPython = "/usr/bin/python3"

// Toil is a running Toil packer. It implements scaler.Packer.
type Toil struct {
	mu    sync.Mutex
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	dir   string
	calls int
}

var _ scaler.Packer = (*Toil)(nil)

// Start starts the driver with python (empty means GAFFER_TOIL_PYTHON,
// then DefaultPython). Close it when done.
func Start(ctx context.Context, python string) (*Toil, error) {
	if python == "" {
		python = os.Getenv("GAFFER_TOIL_PYTHON")
	}
	if python == "" {
		python = DefaultPython
	}
	if err := exec.CommandContext(ctx, python, "-c", "import toil.provisioners.clusterScaler").Run(); err != nil {
		return nil, fmt.Errorf("%w (%s: %w)", ErrNoToil, python, err)
	}
	dir, err := os.MkdirTemp("", "gaffer-toilcompare")
	if err != nil {
		return nil, fmt.Errorf("toilcompare: %w", err)
	}
	script := filepath.Join(dir, "toil_binpack.py")
	if err := os.WriteFile(script, driver, 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("toilcompare: %w", err)
	}
	cmd := exec.Command(python, script)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("toilcompare: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("toilcompare: %w", err)
	}
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("toilcompare: starting %s: %w", python, err)
	}
	return &Toil{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20), dir: dir}, nil
}

// Close stops the driver.
func (t *Toil) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	_ = t.in.Close()
	err := t.cmd.Wait()
	_ = os.RemoveAll(t.dir)
	return err
}

// Calls is how many packings Toil did.
func (t *Toil) Calls() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.calls
}

type wireShape struct {
	Wall  float64 `json:"wall"`
	Mem   int64   `json:"mem"`
	Cores float64 `json:"cores"`
	Disk  int64   `json:"disk"`
	Pre   bool    `json:"pre"`
}

func toWire(s scaler.Shape) wireShape {
	return wireShape{s.WallTime.Seconds(), s.Memory, s.Cores, s.Disk, s.Preemptible}
}

func fromWire(w wireShape) scaler.Shape {
	return scaler.Shape{WallTime: time.Duration(w.Wall * float64(time.Second)), Memory: w.Mem, Cores: w.Cores, Disk: w.Disk, Preemptible: w.Pre}
}

type request struct {
	Nodes  []wireShape `json:"nodes"`
	Jobs   [][2]any    `json:"jobs"`
	Target float64     `json:"target"`
}

type answer struct {
	Nodes []int                `json:"nodes"`
	Unfit [][2]json.RawMessage `json:"unfit"`
}

// BinPack asks Toil to pack the jobs, returning what scaler.BinPack
// returns. Node shapes must be distinct: Toil keys its result by shape.
func (t *Toil) BinPack(ctx context.Context, nodes []scaler.Shape, jobs []scaler.ShapeCount, target time.Duration) (scaler.Packing, error) {
	if err := ctx.Err(); err != nil {
		return scaler.Packing{}, err
	}
	req := request{Nodes: []wireShape{}, Jobs: [][2]any{}, Target: target.Seconds()}
	for _, n := range nodes {
		req.Nodes = append(req.Nodes, toWire(n))
	}
	for _, j := range jobs {
		req.Jobs = append(req.Jobs, [2]any{toWire(j.Shape), j.Count})
	}
	line, err := json.Marshal(req)
	if err != nil {
		return scaler.Packing{}, fmt.Errorf("toilcompare: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.calls++
	if _, err := t.in.Write(append(line, '\n')); err != nil {
		return scaler.Packing{}, fmt.Errorf("toilcompare: writing to toil: %w", err)
	}
	reply, err := t.out.ReadBytes('\n')
	if err != nil {
		return scaler.Packing{}, fmt.Errorf("toilcompare: reading from toil: %w", err)
	}
	var a answer
	if err := json.Unmarshal(reply, &a); err != nil {
		return scaler.Packing{}, fmt.Errorf("toilcompare: toil's answer %q: %w", reply, err)
	}
	p := scaler.Packing{Nodes: a.Nodes}
	for _, u := range a.Unfit {
		var s wireShape
		var c int
		if err := errors.Join(json.Unmarshal(u[0], &s), json.Unmarshal(u[1], &c)); err != nil {
			return scaler.Packing{}, fmt.Errorf("toilcompare: toil's answer %q: %w", reply, err)
		}
		p.Unfit = append(p.Unfit, scaler.ShapeCount{Shape: fromWire(s), Count: c})
	}
	return p, nil
}

// Pack implements scaler.Packer with Toil's packer.
func (t *Toil) Pack(ctx context.Context, nodes []scaler.Shape, jobs []scaler.ShapeCount, target time.Duration) ([]int, error) {
	p, err := t.BinPack(ctx, nodes, jobs, target)
	return p.Nodes, err
}

// ReserveOverhead asks Toil what is left of each node shape after its
// overhead model.
func (t *Toil) ReserveOverhead(ctx context.Context, nodes []scaler.Shape) ([]scaler.Shape, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	req := map[string][]wireShape{"overhead": {}}
	for _, n := range nodes {
		req["overhead"] = append(req["overhead"], toWire(n))
	}
	line, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("toilcompare: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, err := t.in.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("toilcompare: writing to toil: %w", err)
	}
	reply, err := t.out.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("toilcompare: reading from toil: %w", err)
	}
	var a struct {
		Shapes []wireShape `json:"shapes"`
	}
	if err := json.Unmarshal(reply, &a); err != nil {
		return nil, fmt.Errorf("toilcompare: toil's answer %q: %w", reply, err)
	}
	out := make([]scaler.Shape, len(a.Shapes))
	for i, s := range a.Shapes {
		out[i] = fromWire(s)
	}
	return out, nil
}
