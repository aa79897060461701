package host

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"postline/plugins/pb"
)

// call makes one hook call within the plugin's timeout. Whatever goes
// wrong comes back as a verdict, never as a wait longer than the timeout:
// a crash or a hang also takes the process out of service for a restart.
func (p *proc) call(ctx context.Context, hook Hook, queueID string,
	fn func(context.Context, pb.FilterClient) (*pb.Verdict, error)) verdict {
	cctx, cancel := context.WithTimeout(ctx, p.spec.Timeout)
	defer cancel()
	inst, err := p.acquire(cctx)
	if err != nil {
		return p.onError(hook, queueID, "unavailable", err)
	}
	pv, err := fn(cctx, inst.rpc)
	if err != nil {
		reason := classify(ctx, cctx, inst, err)
		if reason == "timeout" || reason == "crashed" {
			p.fail(inst, reason, err)
		}
		return p.onError(hook, queueID, reason, err)
	}
	v, problems := checkVerdict(pv)
	for _, pr := range problems {
		p.event(p.log.Warn(), hook, queueID).Str("problem", pr).Msg("plugin verdict repaired")
	}
	if v.action != Continue || len(v.edits) > 0 {
		p.event(p.log.Debug(), hook, queueID).Stringer("action", v.action).Int("edits", len(v.edits)).Msg("plugin verdict")
	}
	return v
}

// classify says whose fault a failed call was. Only our own deadline
// counts as a hang (a plugin may pass on a DeadlineExceeded of its own),
// and only a broken transport or an exited process as a crash; a session
// that went away blames no one.
func classify(parent, cctx context.Context, inst *instance, err error) string {
	var he hostError
	switch {
	case errors.As(err, &he):
		return "host"
	case parent.Err() != nil:
		return "cancelled"
	case cctx.Err() != nil || pastDeadline(cctx):
		return "timeout"
	case status.Code(err) == codes.Unavailable || inst.exited():
		return "crashed"
	}
	return "error"
}

// pastDeadline reports whether ctx's deadline has come: gRPC may end a
// call on its own timer a moment before ctx's timer marks ctx done.
func pastDeadline(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// onError is the verdict for a failed call: per on_error, "tempfail"
// answers 451 4.7.0 so the client retries and nothing passes unfiltered,
// "continue" lets the message go on as if the plugin had no objection.
func (p *proc) onError(hook Hook, queueID, reason string, err error) verdict {
	ev := p.log.Warn()
	if reason == "cancelled" {
		ev = p.log.Debug()
	}
	p.event(ev, hook, queueID).Err(err).Str("reason", reason).Str("on_error", p.spec.OnError).Msg("plugin call failed")
	switch {
	case reason == "host":
		return verdict{action: Tempfail, reply: localError}
	case p.spec.OnError == OnErrorContinue:
		return verdict{action: Continue}
	}
	return verdict{action: Tempfail, reply: Reply{451, "4.7.0", "filter " + p.spec.Name + " unavailable"}}
}

func (p *proc) event(ev *zerolog.Event, hook Hook, queueID string) *zerolog.Event {
	ev = ev.Str("hook", string(hook))
	if queueID != "" {
		ev = ev.Str("queue_id", queueID)
	}
	return ev
}
