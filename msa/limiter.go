package msa

import (
	"sync"
	"time"
)

// authLimiter slows down and then locks out password guessing, per client
// IP and per account: each failure delays the 535 reply by one more
// second (up to maxDelay), and maxPerIP or maxPerAccount failures within
// the lockout window refuse further attempts until the window ends.
type authLimiter struct {
	maxPerIP, maxPerAccount int
	lockout, maxDelay       time.Duration
	now                     func() time.Time

	mu       sync.Mutex
	failures map[string]*failures // keyed "ip:"+ip or "acct:"+account
}

type failures struct {
	count int
	first time.Time
}

func newAuthLimiter(maxPerIP, maxPerAccount int, lockout, maxDelay time.Duration) *authLimiter {
	return &authLimiter{maxPerIP: maxPerIP, maxPerAccount: maxPerAccount, lockout: lockout,
		maxDelay: maxDelay, now: time.Now, failures: map[string]*failures{}}
}

// locked reports whether attempts from ip or for account are refused now.
func (l *authLimiter) locked(ip, account string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count("ip:"+ip) >= l.maxPerIP || l.count("acct:"+account) >= l.maxPerAccount
}

// failed records a failure and returns how long to delay the reply and
// whether this failure started a lockout.
func (l *authLimiter) failed(ip, account string) (delay time.Duration, nowLocked bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ipCount, acctCount := l.add("ip:"+ip), l.add("acct:"+account)
	delay = min(time.Duration(max(ipCount, acctCount))*time.Second, l.maxDelay)
	return delay, ipCount == l.maxPerIP || acctCount == l.maxPerAccount
}

// succeeded forgets the account's failures: its owner knows the password.
// The IP's count stays, so one good account cannot shield guessing at others.
func (l *authLimiter) succeeded(account string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.failures, "acct:"+account)
}

// count returns the failures of key in the current window.
func (l *authLimiter) count(key string) int {
	f := l.failures[key]
	if f == nil {
		return 0
	}
	if l.now().Sub(f.first) > l.lockout {
		delete(l.failures, key)
		return 0
	}
	return f.count
}

func (l *authLimiter) add(key string) int {
	if l.count(key) == 0 {
		l.failures[key] = &failures{first: l.now()}
		if len(l.failures) > 100000 { // bound memory under a wide attack
			l.prune()
		}
	}
	l.failures[key].count++
	return l.failures[key].count
}

func (l *authLimiter) prune() {
	for key := range l.failures {
		l.count(key)
	}
}

// lockedIP reports whether attempts from ip are refused now.
func (l *authLimiter) lockedIP(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count("ip:"+ip) >= l.maxPerIP
}
