package gaffer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/jobstore"
)

// exDownload fails on its first try of a.txt, as a download that timed
// out would.
var exDownload = gaffer.MustRegister("example.attempts.download", func(ctx context.Context, jc *gaffer.JobContext, url string) (string, error) {
	if url == "a.txt" && jc.Attempt() == 1 {
		return "", errors.New("timed out")
	}
	return "contents of " + url, nil
}, exSmall...)

// exFetchTwo downloads two files.
var exFetchTwo = gaffer.MustRegister("example.attempts.fetch", func(ctx context.Context, jc *gaffer.JobContext, _ struct{}) (string, error) {
	jc.AddChild(exDownload.New("a.txt", gaffer.Name("a.txt")))
	jc.AddChild(exDownload.New("b.txt", gaffer.Name("b.txt")))
	return "fetched", nil
}, exSmall...)

// The store keeps a record of every attempt of every job: what it asked
// for, where, when and how long it ran, how it ended, and the path of its
// log if one was kept. Tools read them without a leader, from a store
// opened read-only (which other readers may share, but not a leader).
func Example_attemptRecords() {
	dir, err := os.MkdirTemp("", "gaffer-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	store := filepath.Join(dir, "workflow.db")
	leader, err := gaffer.NewLeader(gaffer.Config{Store: store, RetryBackoff: -1})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = gaffer.Run(context.Background(), leader, exFetchTwo.New(struct{}{}, gaffer.Name("fetch")))
	leader.Close()
	if err != nil {
		fmt.Println(err)
		return
	}

	s, err := jobstore.OpenBolt(store, &jobstore.BoltOptions{ReadOnly: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	err = s.View(context.Background(), func(tx jobstore.ReadTx) error {
		// Attempts(0) yields every job's attempts, by job, then in order.
		for a, err := range tx.Attempts(0) {
			if err != nil {
				return err
			}
			outcome := "ok"
			if !a.OK {
				outcome = "failed: " + a.Error
			}
			fmt.Printf("%s (%s) attempt %d on %s: %s\n", a.Name, a.Kind, a.N, a.BatchSystem, outcome)
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// fetch (example.attempts.fetch) attempt 1 on local: ok
	// a.txt (example.attempts.download) attempt 1 on local: failed: timed out
	// a.txt (example.attempts.download) attempt 2 on local: ok
	// b.txt (example.attempts.download) attempt 1 on local: ok
}
