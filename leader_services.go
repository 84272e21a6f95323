package gaffer

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gafferhq/gaffer/batchsystem"
	"github.com/gafferhq/gaffer/jobstore"
)

// inProcessHooks connect a service hosted in this process to the leader:
// its start goes to a mailbox, and the leader stops it by closing a
// channel. Hosts in other processes use files instead (fileHooks).
func (l *Leader) inProcessHooks(j *ljob, env *envelope) *svcHooks {
	if j.svc() == nil {
		return nil
	}
	stop := make(chan struct{})
	l.svcMu.Lock()
	l.svcStop[env.Seq] = stop
	l.svcMu.Unlock()
	return &svcHooks{
		stop: stop,
		started: func(v []byte) error {
			l.svcMu.Lock()
			l.startedMail = append(l.startedMail, startReport{Job: env.Job, Epoch: env.Epoch, Seq: env.Seq, Value: v})
			l.svcMu.Unlock()
			return nil
		},
	}
}

func (l *Leader) dropInProcessHooks(j *ljob) {
	if j.svc() == nil || !l.inProc {
		return
	}
	l.svcMu.Lock()
	delete(l.svcStop, j.seq)
	l.svcMu.Unlock()
}

// collectStarts takes the starts services reported since the last look,
// stores each value (the promise their users read) and lets the clients
// whose services have all started run their successors, in one
// transaction. Its cost is O(new reports): the mailbox, or the started
// folder, which holds only reports not yet taken.
func (l *Leader) collectStarts(ctx context.Context) error {
	if l.g.services == 0 {
		return nil
	}
	var reports []startReport
	var files []string
	if l.inProc {
		l.svcMu.Lock()
		reports, l.startedMail = l.startedMail, nil
		l.svcMu.Unlock()
	} else {
		dir := filepath.Join(l.cfg.WorkDir, startedDir)
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".json") {
				continue // a report being written
			}
			path := filepath.Join(dir, e.Name())
			files = append(files, path)
			b, err := os.ReadFile(path)
			var r startReport
			if err != nil || json.Unmarshal(b, &r) != nil {
				l.log.Warn("unreadable service start report; ignored", "file", path)
				continue
			}
			reports = append(reports, r)
		}
	}
	if len(reports) == 0 {
		for _, f := range files {
			os.Remove(f)
		}
		return nil
	}
	err := l.commit(ctx, func(tx jobstore.Tx) error {
		for _, r := range reports {
			s := l.g.jobs[r.Job]
			// Only the start of the attempt now issued counts.
			if s == nil || s.svc() == nil || s.where != isIssued || s.seq != r.Seq || r.Epoch != l.meta.Epoch {
				continue
			}
			if err := tx.PutResult(s.id, r.Value); err != nil {
				return err
			}
			l.log.Debug("service started", "job_id", s.id.String(), "job_kind", s.kind)
			l.g.serviceStarted(s)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, f := range files {
		os.Remove(f)
	}
	l.lastProgress = time.Now()
	return nil
}

// stopAndKill carries out what the graph decided at the last commit: it
// asks services to stop and kills cancelled jobs.
func (l *Leader) stopAndKill(ctx context.Context) {
	for _, s := range l.g.toStop {
		if s.where != isIssued || s.state != jobstore.StatePending {
			continue
		}
		if l.inProc {
			l.svcMu.Lock()
			if ch, ok := l.svcStop[s.seq]; ok {
				close(ch)
				delete(l.svcStop, s.seq)
			}
			l.svcMu.Unlock()
			continue
		}
		epoch := l.meta.Epoch
		if e := s.extra().issueEpoch; e != 0 {
			epoch = e
		}
		f := filepath.Join(l.jobDir(s.id), stopFile(epoch, s.seq))
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			l.log.Warn("could not ask a service to stop; killing it", "job_id", s.id.String(), "err", err)
			l.g.toKill = append(l.g.toKill, s)
		}
	}
	l.g.toStop = l.g.toStop[:0]
	if len(l.g.toKill) == 0 {
		return
	}
	var ids []batchsystem.ID
	for _, j := range l.g.toKill {
		if j.where == isIssued {
			ids = append(ids, j.bsID)
			l.untrack(j.bsID, j, 0, false)
			if !l.inProc {
				l.cleanup = append(l.cleanup, l.jobDir(j.id))
			}
		}
	}
	l.g.toKill = l.g.toKill[:0]
	if len(ids) > 0 {
		if err := l.bs.Kill(context.WithoutCancel(ctx), ids); err != nil {
			l.log.Warn("killing cancelled jobs", "jobs", len(ids), "err", err)
		}
		l.log.Info("killed cancelled jobs", "jobs", len(ids))
	}
}
