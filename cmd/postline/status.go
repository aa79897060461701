package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"postline/config"
	"postline/mta"
)

// Status is what `postline status` shows, as the supervisor answers it
// on its status socket (config.StatusSocket: root's, mode 0600).
type Status struct {
	Config      string              `json:"config"`
	Started     time.Time           `json:"started"`
	Daemons     []DaemonStatus      `json:"daemons"`
	Listeners   map[string][]string `json:"listeners"`
	Queue       *mta.QueueStats     `json:"queue,omitempty"`
	QueueError  string              `json:"queue_error,omitempty"`
	Certificate *CertStatus         `json:"certificate,omitempty"`
	Problems    []Problem           `json:"problems"` // the supervisor's own
}

// DaemonStatus is one supervised daemon.
type DaemonStatus struct {
	Name     string    `json:"name"`
	PID      int       `json:"pid"`
	Since    time.Time `json:"since"` // when the running process started
	Restarts int       `json:"restarts"`
	Problems []Problem `json:"problems"` // its last warnings and errors
}

// CertStatus is the certificate the listeners present.
type CertStatus struct {
	File       string    `json:"file"`
	Subject    string    `json:"subject"`
	Issuer     string    `json:"issuer"`
	NotAfter   time.Time `json:"not_after"`
	SelfSigned bool      `json:"self_signed"`
	Error      string    `json:"error,omitempty"`
}

// Problem is one warning or error a daemon logged.
type Problem struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
	Detail  string    `json:"detail,omitempty"` // the other fields, key=value
}

// problems keeps the last few.
type problems []Problem

const keptProblems = 5

// add records a log line (JSON, as daemon.NewLogger writes it).
func (p *problems) add(line string) {
	var fields map[string]any
	if json.Unmarshal([]byte(line), &fields) != nil {
		fields = map[string]any{"message": line}
	}
	str := func(k string) string { s, _ := fields[k].(string); delete(fields, k); return s }
	pr := Problem{Level: str("level"), Message: str("message")}
	pr.Time, _ = time.Parse(time.RFC3339Nano, str("time"))
	delete(fields, "svc")
	var detail []string
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		detail = append(detail, fmt.Sprintf("%s=%v", k, fields[k]))
	}
	pr.Detail = strings.Join(detail, " ")
	if *p = append(*p, pr); len(*p) > keptProblems {
		*p = (*p)[len(*p)-keptProblems:]
	}
}

// supervisorStatus is what the supervisor knows and asks for.
type supervisorStatus struct {
	cfg      *config.Config
	started  time.Time
	children []*child
	own      *problemLog
}

func (s *supervisorStatus) status() Status {
	st := Status{Config: s.cfg.File, Started: s.started, Problems: s.own.list(),
		Listeners: map[string][]string{"msa.submission": s.cfg.MSA.Submission,
			"msa.submissions": s.cfg.MSA.Submissions, "mta.listen": s.cfg.MTA.Listen}}
	for _, c := range s.children {
		c.mu.Lock()
		st.Daemons = append(st.Daemons, DaemonStatus{Name: c.name, PID: c.pid, Since: c.since,
			Restarts: c.restarts, Problems: slices.Clone(c.problems)})
		c.mu.Unlock()
	}
	resp, err := mta.AdminCall(s.cfg.MTAAdminSocket(), mta.AdminRequest{Cmd: "stats"}, 5*time.Second)
	if err == nil && resp.OK {
		st.Queue = resp.Stats
	} else if err != nil {
		st.QueueError = err.Error()
	} else {
		st.QueueError = resp.Error
	}
	st.Certificate = certStatus(s.cfg)
	return st
}

// certStatus reads the listeners' certificate.
func certStatus(cfg *config.Config) *CertStatus {
	file, _, generated := cfg.CertFiles()
	cs := &CertStatus{File: file}
	data, err := os.ReadFile(file)
	block, _ := pem.Decode(data)
	if err == nil && block == nil {
		err = errors.New("no PEM block")
	}
	var cert *x509.Certificate
	if err == nil {
		cert, err = x509.ParseCertificate(block.Bytes)
	}
	if err != nil {
		cs.Error = err.Error()
		return cs
	}
	cs.Subject, cs.Issuer, cs.NotAfter = cert.Subject.String(), cert.Issuer.String(), cert.NotAfter
	cs.SelfSigned = generated || cert.Subject.String() == cert.Issuer.String()
	return cs
}

// serveStatus answers each connection to the status socket with the
// status as JSON, until ctx ends. The socket is the supervisor's user's
// alone: the status names users (in problems) and paths.
func (s *supervisorStatus) serveStatus(ctx context.Context, log zerolog.Logger) {
	path := s.cfg.StatusSocket()
	os.Remove(path) // left by a supervisor that was killed
	l, err := net.Listen("unix", path)
	if err == nil {
		err = os.Chmod(path, 0o600)
	}
	if err != nil {
		log.Error().Err(err).Msg("no status socket; postline status will not answer")
		return
	}
	context.AfterFunc(ctx, func() { l.Close(); os.Remove(path) })
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			json.NewEncoder(c).Encode(s.status())
		}()
	}
}

// problemLog keeps the supervisor's own last warnings and errors: a
// zerolog.LevelWriter beside its stderr.
type problemLog struct {
	mu   sync.Mutex
	kept problems
}

func (l *problemLog) Write(p []byte) (int, error) { return len(p), nil }

func (l *problemLog) WriteLevel(level zerolog.Level, p []byte) (int, error) {
	if level >= zerolog.WarnLevel && level < zerolog.NoLevel {
		l.mu.Lock()
		l.kept.add(strings.TrimSpace(string(p)))
		l.mu.Unlock()
	}
	return len(p), nil
}

func (l *problemLog) list() []Problem {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.kept)
}
