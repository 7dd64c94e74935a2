package dlt

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// ResumeMargin widens the window a resumed replay searches its
// destination for records an unclean earlier run sent, against clock
// differences between the replaying hosts and the record timestamps.
const ResumeMargin = time.Minute

// The commit metadata Replay writes with its position:
// "kprod-dlt/1 <state> <unix ms> <chunk>". State "running" means records
// may have been sent beyond the position since that time (at most chunk
// per partition); "clean" means none were.
const metaPrefix = "kprod-dlt/1"

func encodeMeta(running bool, since time.Time, chunk int) string {
	state := "clean"
	if running {
		state = "running"
	}
	return fmt.Sprintf("%s %s %d %d", metaPrefix, state, since.UnixMilli(), chunk)
}

func decodeMeta(s string) (running bool, since time.Time, chunk int, ok bool) {
	f := strings.Fields(s)
	if len(f) != 4 || f[0] != metaPrefix {
		return false, time.Time{}, 0, false
	}
	ms, err1 := strconv.ParseInt(f[2], 10, 64)
	c, err2 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil || c <= 0 {
		return false, time.Time{}, 0, false
	}
	return f[1] == "running", time.UnixMilli(ms), c, true
}

// priorPos is a partition's committed position as an earlier run left it.
type priorPos struct {
	partition int32
	at        int64
	meta      string
}

// commit stores pos as the group's position. It runs even after ctx
// ended (bounded by 30s): an interrupted replay commits what it did.
func (r *replayer) commit(ctx context.Context, pos map[int32]int64, running bool, since time.Time) error {
	if r.carry.until != nil {
		pending := false
		for p, u := range r.carry.until {
			pending = pending || pos[p] < u
		}
		if pending {
			running = true
			since = earliest(since, r.carry.since)
		} else {
			r.carry = resumeCarry{}
		}
	}
	meta := encodeMeta(running, since, r.cfg.Chunk)
	os := kadm.Offsets{}
	for p, o := range pos {
		os.Add(kadm.Offset{Topic: r.cfg.DLT, Partition: p, At: o, LeaderEpoch: -1, Metadata: meta})
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := r.adm.CommitAllOffsets(cctx, r.cfg.Group, os); err != nil {
		return fmt.Errorf("commit position of group %q: %w", r.cfg.Group, err)
	}
	return nil
}

// resumeCheck looks at what an unclean earlier run (killed, or stopped
// by an unresolved record) may have sent beyond its position: the next
// chunk of dead letters per such partition. It reads the destinations of
// the selected ones from shortly before that run's commit and returns
// the sources already there ("partition/offset").
func (r *replayer) resumeCheck(ctx context.Context, prev []priorPos, ends map[int32]int64) (map[string]bool, resumeCarry, error) {
	var since time.Time
	from, to := map[int32]int64{}, map[int32]int64{}
	for _, pp := range prev {
		running, t, chunk, ok := decodeMeta(pp.meta)
		if !ok || !running {
			continue
		}
		since = earliest(since, t)
		from[pp.partition], to[pp.partition] = pp.at, min(ends[pp.partition], pp.at+int64(chunk))
	}
	if len(from) == 0 {
		return nil, resumeCarry{}, nil
	}
	carry := resumeCarry{since: since, until: to}
	targets := map[string]bool{}
	rd, err := newReader(r.opts, r.cfg.DLT, from, to, r.cfg.Idle)
	if err != nil {
		return nil, carry, err
	}
	for {
		recs, err := rd.poll(ctx)
		if err != nil {
			rd.close()
			return nil, carry, err
		}
		if len(recs) == 0 {
			break
		}
		for _, rec := range recs {
			d := Decode(rec)
			if !r.cfg.Filter.Match(d) {
				continue
			}
			t := r.cfg.ToTopic
			if t == "" {
				t = d.Failure.Topic
			}
			if t != "" {
				targets[t] = true
			}
		}
	}
	rd.close()
	seen := map[string]bool{}
	prefix := r.cfg.DLT + "/"
	ms := since.Add(-ResumeMargin).UnixMilli()
	for t := range targets {
		after, err := r.adm.ListOffsetsAfterMilli(ctx, ms, t)
		if err == nil {
			err = after.Error()
		}
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			continue
		}
		if err != nil {
			return nil, carry, fmt.Errorf("resume: offsets of %q after %v: %w", t, since, err)
		}
		_, tends, err := bounds(ctx, r.adm, t)
		if err != nil {
			return nil, carry, fmt.Errorf("resume: %w", err)
		}
		starts := map[int32]int64{}
		after.Each(func(o kadm.ListedOffset) {
			if o.Offset >= 0 {
				starts[o.Partition] = o.Offset
			}
		})
		trd, err := newReader(r.opts, t, starts, tends, r.cfg.Idle)
		if err != nil {
			return nil, carry, err
		}
		for {
			recs, err := trd.poll(ctx)
			if err != nil {
				trd.close()
				return nil, carry, err
			}
			if len(recs) == 0 {
				break
			}
			for _, rec := range recs {
				for _, h := range rec.Headers {
					if h.Key == HeaderReplaySource && strings.HasPrefix(string(h.Value), prefix) {
						seen[strings.TrimPrefix(string(h.Value), prefix)] = true
					}
				}
			}
		}
		trd.close()
	}
	return seen, carry, nil
}

func sourceKey(partition int32, offset int64) string {
	return strconv.FormatInt(int64(partition), 10) + "/" + strconv.FormatInt(offset, 10)
}
