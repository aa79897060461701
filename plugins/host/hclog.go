package host

import (
	"bytes"
	"fmt"
	"io"
	"log"

	"github.com/hashicorp/go-hclog"
	"github.com/rs/zerolog"
)

// zlog is an hclog.Logger that writes into the daemon's zerolog logger.
// go-plugin logs through it, and so do the plugin's own lines: go-plugin
// parses the JSON lines a plugin writes on stderr and re-emits them here
// under the name of the plugin's binary. Every line carries the plugin's
// configured name (plugin=...), set on z by the caller.
type zlog struct {
	z    zerolog.Logger
	name string // hclog's logger name, logged as "from"
	args []any  // implied arguments from With
}

func newHCLogger(z zerolog.Logger) hclog.Logger { return &zlog{z: z} }

// reserved are keys the daemon's log lines already have; an argument with
// one of these names is renamed so a JSON line never holds a key twice.
var reserved = map[string]bool{"plugin": true, "from": true, "svc": true, "level": true, "message": true, "time": true}

func (l *zlog) Log(level hclog.Level, msg string, args ...any) {
	ev := l.z.WithLevel(zerologLevel(level))
	if ev == nil {
		return // level disabled
	}
	if l.name != "" {
		ev = ev.Str("from", l.name)
	}
	addArgs(ev, l.args)
	addArgs(ev, args)
	ev.Msg(msg)
}

func addArgs(ev *zerolog.Event, args []any) {
	if len(args)%2 == 1 {
		last := len(args) - 1 // a value without a key, named as hclog does
		args = append(args[:last:last], "EXTRA_VALUE_AT_END", args[last])
	}
	for i := 0; i+1 < len(args); i += 2 {
		k := fmt.Sprint(args[i])
		if k == "timestamp" {
			continue // the plugin's own clock; the daemon's line has its time
		}
		if reserved[k] {
			k = "arg_" + k
		}
		switch v := args[i+1].(type) {
		case string:
			ev.Str(k, v)
		case error:
			ev.Str(k, v.Error())
		case hclog.Format:
			ev.Str(k, fmt.Sprintf(fmt.Sprint(v[0]), v[1:]...))
		default:
			ev.Interface(k, v)
		}
	}
}

func zerologLevel(l hclog.Level) zerolog.Level {
	switch l {
	case hclog.Trace:
		return zerolog.TraceLevel
	case hclog.Debug:
		return zerolog.DebugLevel
	case hclog.Warn:
		return zerolog.WarnLevel
	case hclog.Error:
		return zerolog.ErrorLevel
	case hclog.Off:
		return zerolog.Disabled
	}
	return zerolog.InfoLevel
}

// GetLevel lets go-plugin skip parsing plugin lines the daemon would drop.
func (l *zlog) GetLevel() hclog.Level {
	zl := max(l.z.GetLevel(), zerolog.GlobalLevel())
	switch {
	case zl <= zerolog.TraceLevel:
		return hclog.Trace
	case zl == zerolog.DebugLevel:
		return hclog.Debug
	case zl == zerolog.InfoLevel:
		return hclog.Info
	case zl == zerolog.WarnLevel:
		return hclog.Warn
	case zl == zerolog.ErrorLevel:
		return hclog.Error
	}
	return hclog.Off
}

func (l *zlog) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }
func (l *zlog) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }
func (l *zlog) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l *zlog) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l *zlog) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }
func (l *zlog) IsTrace() bool                 { return l.GetLevel() <= hclog.Trace }
func (l *zlog) IsDebug() bool                 { return l.GetLevel() <= hclog.Debug }
func (l *zlog) IsInfo() bool                  { return l.GetLevel() <= hclog.Info }
func (l *zlog) IsWarn() bool                  { return l.GetLevel() <= hclog.Warn }
func (l *zlog) IsError() bool                 { return l.GetLevel() <= hclog.Error }
func (l *zlog) ImpliedArgs() []any            { return l.args }
func (l *zlog) Name() string                  { return l.name }

func (l *zlog) With(args ...any) hclog.Logger {
	c := *l
	c.args = append(l.args[:len(l.args):len(l.args)], args...)
	return &c
}

func (l *zlog) Named(name string) hclog.Logger {
	if l.name != "" {
		name = l.name + "." + name
	}
	return l.ResetNamed(name)
}

func (l *zlog) ResetNamed(name string) hclog.Logger {
	c := *l
	c.name = name
	return &c
}

// SetLevel changes this logger only; go-plugin never calls it.
func (l *zlog) SetLevel(level hclog.Level) { l.z = l.z.Level(zerologLevel(level)) }

func (l *zlog) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(l.StandardWriter(opts), "", 0)
}

func (l *zlog) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	level := hclog.Info
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = opts.ForceLevel
	}
	return writerFunc(func(p []byte) (int, error) {
		l.Log(level, string(bytes.TrimRight(p, "\n")))
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
