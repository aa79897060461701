package daemon

import (
	"os"
	"runtime/pprof"
)

// ProfileEnv names a file prefix: when set, a daemon writes a CPU
// profile of its run to PREFIX.SVC (for `go tool pprof`), to find where
// a benchmark's time goes.
const ProfileEnv = "POSTLINE_CPUPROFILE"

// Profile starts the CPU profile ProfileEnv asks for and returns the
// function that ends it; without the variable both do nothing.
func Profile(svc string) (stop func()) {
	prefix := os.Getenv(ProfileEnv)
	if prefix == "" {
		return func() {}
	}
	f, err := os.Create(prefix + "." + svc)
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
