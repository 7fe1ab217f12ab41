package boot

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/dockerinit/dockerinit/internal/safego"
)

// stubSequence is a Sequence over the given steps, logging to log.
func stubSequence(log *bytes.Buffer, steps ...step) *Sequence {
	s := &Sequence{log: &Logger{w: log}, steps: steps, marks: make([]int, len(steps))}
	return s
}

func TestRunResumesAtTheFailedStep(t *testing.T) {
	var ran []string
	failures := map[string]int{} // how many more times each step fails
	mk := func(name, retryFrom string) step {
		return step{name: name, retryFrom: retryFrom, run: func() error {
			ran = append(ran, name)
			if failures[name] > 0 {
				failures[name]--
				return errors.New(name + " is broken")
			}
			return nil
		}}
	}
	for _, tc := range []struct {
		name      string
		fail      string
		wantRetry string
		wantRan   string // the steps run by the first Run, then by the retry
	}{
		{"first step", "a", "a", "a | a b c d"},
		{"middle step", "c", "c", "a b c | c d"},
		{"retry from an earlier step", "d", "b", "a b c d | b c d"},
		{"panic", "panic", "c", "a b c | c d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran, failures = nil, map[string]int{tc.fail: 1}
			steps := []step{mk("a", ""), mk("b", ""), mk("c", ""), mk("d", "b")}
			if tc.fail == "panic" {
				panicked := false
				steps[2].run = func() error {
					ran = append(ran, "c")
					if !panicked {
						panicked = true
						var m map[string]int
						m["x"] = 1 // a bug in a step
					}
					return nil
				}
			}
			var log bytes.Buffer
			s := stubSequence(&log, steps...)
			_, err := s.Run()
			var se *StepError
			if !errors.As(err, &se) {
				t.Fatalf("first Run: %v, want a StepError", err)
			}
			if se.RetryAt != tc.wantRetry {
				t.Errorf("RetryAt %q, want %q", se.RetryAt, tc.wantRetry)
			}
			var pe *safego.PanicError
			if tc.fail == "panic" && (!errors.As(err, &pe) || !strings.Contains(err.Error(), "please report it")) {
				t.Errorf("a panic became %q, want an internal error", err)
			}
			first := strings.Join(ran, " ")
			ran = nil
			rep, err := s.Run()
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if got := first + " | " + strings.Join(ran, " "); got != tc.wantRan {
				t.Errorf("steps run %q, want %q", got, tc.wantRan)
			}
			var names []string
			for _, st := range rep.Steps {
				names = append(names, st.Name)
			}
			if got := strings.Join(names, " "); got != "a b c d" {
				t.Errorf("report steps %q, want each step once", got)
			}
			if want := `retrying the boot from step "` + tc.wantRetry + `"`; !strings.Contains(log.String(), want) {
				t.Errorf("the log lacks %q:\n%s", want, log.String())
			}
		})
	}
}

func TestStepList(t *testing.T) {
	for _, mode := range []Mode{Full, Prepare} {
		s := New(Options{Mode: mode})
		seen := map[string]bool{}
		for _, st := range s.steps {
			if seen[st.name] {
				t.Errorf("mode %d: step %q twice", mode, st.name)
			}
			seen[st.name] = true
		}
		for _, st := range s.steps {
			if st.retryFrom != "" && !seen[st.retryFrom] {
				t.Errorf("mode %d: step %q retries from %q, which is no step", mode, st.name, st.retryFrom)
			}
		}
		last := s.steps[len(s.steps)-1].name
		if want := map[Mode]string{Full: "switch root", Prepare: "write boot.json"}[mode]; last != want {
			t.Errorf("mode %d ends with %q, want %q", mode, last, want)
		}
	}
}
