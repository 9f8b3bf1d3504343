package dpserver

import (
	"errors"
	"fmt"
	"time"
)

// Pipeline is a snapshot of a pipeline and its runs, for a view such as
// the playground.
type Pipeline struct {
	ID, Name, UniqueID string
	// State is DescribePipelines' @pipelineState (PENDING, SCHEDULED,
	// FINISHED, INACTIVE).
	State                   string
	Created, LastActivation time.Time
	Deleted                 bool
	// Held: runs of pipelines with this name stay RUNNING (Hold).
	Held bool
	Runs []Run
}

// Pipelines returns every pipeline created so far, deleted ones included,
// in creation order.
func (s *Server) Pipelines() []Pipeline {
	s.mu.Lock()
	ids := append([]string(nil), s.order...)
	var out []Pipeline
	for _, id := range ids {
		p := s.pipelines[id]
		out = append(out, Pipeline{ID: p.id, Name: p.name, UniqueID: p.uniqueID, State: p.state(),
			Created: p.created, LastActivation: p.lastActivation, Deleted: p.deleted, Held: s.held[p.name]})
	}
	s.mu.Unlock()
	for i := range out {
		out[i].Runs = s.Runs(out[i].ID)
	}
	return out
}

// Held reports whether runs of the pipelines named name are held (Hold).
func (s *Server) Held(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held[name]
}

// ErrNotHeld is FailRun's and FinishRun's answer for a pipeline whose
// latest run is over or not held: an unheld run ends on its own within
// WaitingFor+RunningFor, and its end is not to be changed afterwards.
var ErrNotHeld = errors.New("dpserver: the pipeline has no held run")

// heldRun is the pipeline's latest run if it is not over and its name is
// held; the caller holds s.mu.
func (s *Server) heldRun(pipelineID string) (*run, error) {
	p, ok := s.pipelines[pipelineID]
	if !ok {
		return nil, fmt.Errorf("dpserver: no pipeline %s", pipelineID)
	}
	if len(p.runs) == 0 || !s.held[p.name] {
		return nil, ErrNotHeld
	}
	r := p.runs[len(p.runs)-1]
	if terminal(r.status) {
		return nil, ErrNotHeld
	}
	return r, nil
}

// FailRun ends the pipeline's held run FAILED with msg, as a run whose
// EmrActivity attempt fails ends in AWS: the attempt and the activity
// instance become FAILED with errorMessage, errorStackTrace and errorId,
// the cluster CASCADE_FAILED, and nothing is written to S3 (the same end
// as FailNext). It releases the hold on the pipeline's name, as Release
// does, so other held runs of that name go on too.
func (s *Server) FailRun(pipelineID, msg string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.heldRun(pipelineID)
	if err != nil {
		return err
	}
	if msg == "" {
		msg = "EMR step failed"
	}
	// The run's goroutine reads failMsg once it sees the hold released,
	// which it checks under s.mu: this write happens before that read.
	r.failMsg = msg
	delete(s.held, r.p.name)
	return nil
}

// FinishRun lets the pipeline's held run go on to its end: the export
// runs and the run ends FINISHED (or FAILED if the export fails, e.g. the
// table is gone). It is Release on the pipeline's name.
func (s *Server) FinishRun(pipelineID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.heldRun(pipelineID)
	if err != nil {
		return err
	}
	delete(s.held, r.p.name)
	return nil
}
