package main

import (
	"bufio"
	"fmt"
	"os"
	"sync"
	"time"
)

// opLog is the workload's claims: one line per event, appended by one
// goroutine that group-commits (write, then fsync) every syncEvery or
// whenever its queue is long. Lines are "EVENT ID [k=v ...]".
type opLog struct {
	f     *os.File
	lines chan string
	done  chan struct{}
	mu    sync.Mutex
	err   error
}

const syncEvery = 5 * time.Millisecond

func openOpLog(path string) (*opLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	l := &opLog{f: f, lines: make(chan string, 65536), done: make(chan struct{})}
	go l.run()
	return l, nil
}

// logf queues one line. It blocks when the queue is full (the writer
// fsyncs as fast as the disk allows), so the log never drops a line.
func (l *opLog) logf(format string, args ...any) {
	l.lines <- fmt.Sprintf(format, args...)
}

func (l *opLog) run() {
	defer close(l.done)
	w := bufio.NewWriterSize(l.f, 1<<16)
	t := time.NewTicker(syncEvery)
	defer t.Stop()
	dirty := false
	commit := func() {
		if !dirty {
			return
		}
		err := w.Flush()
		if err == nil {
			err = l.f.Sync()
		}
		if err != nil {
			l.mu.Lock()
			if l.err == nil {
				l.err = err
			}
			l.mu.Unlock()
		}
		dirty = false
	}
	for {
		select {
		case s, ok := <-l.lines:
			if !ok {
				commit()
				return
			}
			w.WriteString(s)
			w.WriteByte('\n')
			dirty = true
			if w.Buffered() > 1<<15 {
				commit()
			}
		case <-t.C:
			commit()
		}
	}
}

// close writes and fsyncs every queued line. No logf may follow.
func (l *opLog) close() error {
	close(l.lines)
	<-l.done
	l.mu.Lock()
	err := l.err
	l.mu.Unlock()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}
