package dnsrecords

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// Status is what the DNS holds of a record.
type Status string

const (
	OK      Status = "ok"
	Missing Status = "missing"
	Wrong   Status = "wrong"
	Failed  Status = "error" // the DNS could not be asked
)

// Result is one record checked.
type Result struct {
	Record Record
	Status Status
	Detail string // what was found, what is wanted, or why it failed
}

// Checker asks the DNS for the records of a Plan.
type Checker struct {
	Resolver *net.Resolver
	Host     string       // the host's name, no final dot
	Hosts    []netip.Addr // its addresses, which SPF must let send
}

// NewResolver asks server ("host:port") for every lookup, or the
// system's resolvers when server is "".
func NewResolver(server string) *net.Resolver {
	r := &net.Resolver{PreferGo: true}
	if server != "" {
		var d net.Dialer
		r.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, server)
		}
	}
	return r
}

// Check asks for one record.
func (c *Checker) Check(ctx context.Context, r Record) Result {
	var found string
	var err error
	switch {
	case r.Type == dns.TypeA || r.Type == dns.TypeAAAA:
		found, err = c.address(ctx, r)
	case r.Type == dns.TypeCNAME:
		found, err = c.alias(ctx, r)
	case r.Kind == ReverseName:
		found, err = c.reverse(ctx, r)
	case r.Kind == MailExchanger:
		found, err = c.exchangers(ctx, r)
	case r.Kind == Service:
		found, err = c.service(ctx, r)
	default:
		found, err = c.text(ctx, r)
	}
	return result(r, found, err)
}

// errWrong carries what was found instead of the record wanted.
type errWrong struct{ found string }

func (e errWrong) Error() string { return e.found }

func result(r Record, found string, err error) Result {
	var dnsErr *net.DNSError
	var wrong errWrong
	switch {
	case err == nil:
		return Result{r, OK, found}
	case errors.As(err, &wrong):
		return Result{r, Wrong, fmt.Sprintf("found %s; want %s", wrong.found, r.Value)}
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound, errors.Is(err, errNone):
		return Result{r, Missing, "want " + r.Value}
	}
	return Result{r, Failed, err.Error()}
}

// errNone is a name without the record wanted, among others it has.
var errNone = errors.New("no such record")

func (c *Checker) address(ctx context.Context, r Record) (string, error) {
	addrs, err := c.Resolver.LookupNetIP(ctx, "ip", r.Name)
	if err != nil {
		return "", err
	}
	want := netip.MustParseAddr(r.Value)
	for _, a := range addrs {
		if a.Unmap() == want {
			return r.Value, nil
		}
	}
	return "", errWrong{fmt.Sprint(addrs)}
}

// alias accepts the CNAME wanted, or addresses of the host's own.
func (c *Checker) alias(ctx context.Context, r Record) (string, error) {
	target, err := c.Resolver.LookupCNAME(ctx, r.Name)
	if err != nil {
		return "", err
	}
	if strings.EqualFold(target, r.Value) {
		return target, nil
	}
	addrs, err := c.Resolver.LookupNetIP(ctx, "ip", r.Name)
	if err == nil && slices.ContainsFunc(addrs, func(a netip.Addr) bool { return slices.Contains(c.Hosts, a.Unmap()) }) {
		return fmt.Sprint(addrs), nil
	}
	return "", errWrong{target}
}

// reverse checks the PTR and that the name it gives leads back to the
// address (forward-confirmed reverse DNS, what receivers check).
func (c *Checker) reverse(ctx context.Context, r Record) (string, error) {
	ip, err := reverseAddr(r.Name)
	if err != nil {
		return "", err
	}
	names, err := c.Resolver.LookupAddr(ctx, ip.String())
	if err != nil {
		return "", err
	}
	if !slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, r.Value) }) {
		return "", errWrong{strings.Join(names, " ")}
	}
	back, err := c.Resolver.LookupNetIP(ctx, "ip", r.Value)
	if err != nil || !slices.Contains(back, ip) {
		return "", errWrong{fmt.Sprintf("%s, whose addresses %v do not include %s", r.Value, back, ip)}
	}
	return r.Value + " and back", nil
}

// reverseAddr is the address of an in-addr.arpa or ip6.arpa name.
func reverseAddr(name string) (netip.Addr, error) {
	labels := dns.SplitDomainName(name)
	slices.Reverse(labels)
	if len(labels) == 6 && labels[0] == "arpa" && labels[1] == "in-addr" {
		return netip.ParseAddr(strings.Join(labels[2:], "."))
	}
	if len(labels) == 34 && labels[0] == "arpa" && labels[1] == "ip6" {
		var b strings.Builder
		for i, l := range labels[2:] {
			if i > 0 && i%4 == 0 {
				b.WriteByte(':')
			}
			b.WriteString(l)
		}
		return netip.ParseAddr(b.String())
	}
	return netip.Addr{}, fmt.Errorf("%s is not a reverse DNS name", name)
}

func (c *Checker) exchangers(ctx context.Context, r Record) (string, error) {
	mxs, err := c.Resolver.LookupMX(ctx, r.Name)
	if err != nil {
		return "", err
	}
	_, want, _ := strings.Cut(r.Value, " ")
	var found []string
	for _, mx := range mxs {
		if strings.EqualFold(mx.Host, want) {
			return fmt.Sprintf("%d %s", mx.Pref, mx.Host), nil
		}
		found = append(found, fmt.Sprintf("%d %s", mx.Pref, mx.Host))
	}
	return "", errWrong{strings.Join(found, ", ")}
}

func (c *Checker) service(ctx context.Context, r Record) (string, error) {
	_, srvs, err := c.Resolver.LookupSRV(ctx, "", "", r.Name)
	if err != nil {
		return "", err
	}
	f := strings.Fields(r.Value) // priority weight port target
	var found []string
	for _, s := range srvs {
		if strings.EqualFold(s.Target, f[3]) && strconv.Itoa(int(s.Port)) == f[2] {
			return fmt.Sprintf("%s:%d", s.Target, s.Port), nil
		}
		found = append(found, fmt.Sprintf("%s:%d", s.Target, s.Port))
	}
	return "", errWrong{strings.Join(found, ", ")}
}
