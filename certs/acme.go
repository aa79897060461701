package certs

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/acme"

	"postline/config"
	"postline/durable"
)

// Issuer gets the listeners' certificate from an ACME CA (RFC 8555) and
// renews it acme.renew_before its expiry, with golang.org/x/crypto/acme:
// its client alone, not autocert, which picks the challenge type itself,
// fetches on the first handshake and drops renewal errors unlogged. The
// certificate and key go to config.ACMEDir, where the daemons' reload
// path reads them; a failure keeps the current ones and is retried.
type Issuer struct {
	Log        zerolog.Logger
	Challenges *Challenges
	Group      int    // the files' group, whose daemons read them; -1: the caller's
	OnNew      func() // called after a new certificate is in place

	mu   sync.Mutex
	cfg  *config.Config
	wake chan struct{}
}

// NewIssuer returns an issuer for cfg's [acme].
func NewIssuer(cfg *config.Config, log zerolog.Logger) *Issuer {
	return &Issuer{cfg: cfg, Log: log, Challenges: &Challenges{}, Group: -1, wake: make(chan struct{}, 1)}
}

// Reload takes a changed config and looks at the certificate again.
func (i *Issuer) Reload(cfg *config.Config) {
	i.mu.Lock()
	i.cfg = cfg
	i.mu.Unlock()
	select {
	case i.wake <- struct{}{}:
	default:
	}
}

func (i *Issuer) config() *config.Config {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.cfg
}

// Run keeps the certificate current until ctx ends: a failed issuance is
// logged and retried after a minute, doubling to an hour.
func (i *Issuer) Run(ctx context.Context) {
	backoff := time.Minute
	for {
		wait, err := i.step(ctx)
		if err != nil {
			i.Log.Error().Err(err).Dur("retry_in", backoff).Msg("certificate not renewed; the current one stays")
			wait, backoff = backoff, min(2*backoff, time.Hour)
		} else {
			backoff = time.Minute
		}
		select {
		case <-time.After(wait):
		case <-i.wake:
		case <-ctx.Done():
			return
		}
	}
}

// step obtains a certificate when the current one is missing,
// self-signed, for other names or due, and returns how long until the
// next look (at most 12 h, so a changed clock or config is noticed).
func (i *Issuer) step(ctx context.Context) (time.Duration, error) {
	cfg := i.config()
	certFile, _, _ := cfg.CertFiles()
	if due := dueIn(certFile, names(cfg), cfg.ACME.RenewBefore.D(), time.Now()); due > 0 {
		return min(due, 12*time.Hour), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	leaf, err := i.obtain(ctx, cfg)
	if err != nil {
		return 0, err
	}
	i.Log.Info().Strs("names", leaf.DNSNames).Str("issuer", leaf.Issuer.String()).
		Time("not_after", leaf.NotAfter).Msg("certificate issued")
	if i.OnNew != nil {
		i.OnNew()
	}
	return dueIn(certFile, names(cfg), cfg.ACME.RenewBefore.D(), time.Now()), nil
}

// names are the names the certificate is for.
func names(cfg *config.Config) []string { return cfg.CertNames() }

// dueIn is how long until the certificate at path must be renewed; 0 or
// less when it is now (missing, self-signed, missing a name).
func dueIn(path string, want []string, renewBefore time.Duration, now time.Time) time.Duration {
	data, err := os.ReadFile(path)
	block, _ := pem.Decode(data)
	if err != nil || block == nil {
		return 0
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil || leaf.Subject.String() == leaf.Issuer.String() {
		return 0
	}
	for _, n := range want {
		if !slices.Contains(leaf.DNSNames, n) {
			return 0
		}
	}
	return leaf.NotAfter.Add(-renewBefore).Sub(now)
}

// obtain runs one order: account, authorizations by the configured
// challenge, then the certificate for a new key, written out.
func (i *Issuer) obtain(ctx context.Context, cfg *config.Config) (*x509.Certificate, error) {
	client, err := i.client(cfg)
	if err != nil {
		return nil, err
	}
	acct := &acme.Account{Contact: []string{"mailto:" + cfg.ACME.Email}}
	if _, err := client.Register(ctx, acct, acme.AcceptTOS); err != nil && !errors.Is(err, acme.ErrAccountAlreadyExists) {
		return nil, fmt.Errorf("acme: register at %s: %w", cfg.ACME.Directory, err)
	}
	order, err := client.AuthorizeOrder(ctx, acme.DomainIDs(names(cfg)...))
	if err != nil {
		return nil, fmt.Errorf("acme: order: %w", err)
	}
	for _, u := range order.AuthzURLs {
		if err := i.authorize(ctx, client, u, cfg.ACME.Challenge); err != nil {
			return nil, err
		}
	}
	if order, err = client.WaitOrder(ctx, order.URI); err != nil {
		return nil, fmt.Errorf("acme: order: %w", err)
	}
	return i.finalize(ctx, client, cfg, order)
}

// authorize proves control of one name with the challenge of type typ.
func (i *Issuer) authorize(ctx context.Context, client *acme.Client, url, typ string) error {
	z, err := client.GetAuthorization(ctx, url)
	if err != nil {
		return fmt.Errorf("acme: authorization: %w", err)
	}
	if z.Status == acme.StatusValid {
		return nil
	}
	var chal *acme.Challenge
	for _, c := range z.Challenges {
		if c.Type == typ {
			chal = c
		}
	}
	if chal == nil {
		return fmt.Errorf("acme: the CA offers no %s challenge for %s; set acme.challenge to another", typ, z.Identifier.Value)
	}
	done, err := i.Challenges.prepare(client, chal, z.Identifier.Value)
	if err != nil {
		return err
	}
	defer done()
	if _, err := client.Accept(ctx, chal); err != nil {
		return fmt.Errorf("acme: accept %s for %s: %w", typ, z.Identifier.Value, err)
	}
	if _, err := client.WaitAuthorization(ctx, z.URI); err != nil {
		return fmt.Errorf("acme: %s for %s: %w", typ, z.Identifier.Value, err)
	}
	return nil
}

// finalize has the CA sign a new key's request and writes both out.
func (i *Issuer) finalize(ctx context.Context, client *acme.Client, cfg *config.Config, order *acme.Order) (*x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: cfg.Hostname}, DNSNames: names(cfg)}, key)
	if err != nil {
		return nil, err
	}
	chain, _, err := client.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
	if err != nil {
		return nil, fmt.Errorf("acme: certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, err
	}
	return leaf, i.write(cfg, chain, key)
}

// write puts the key, then the chain, in place (a chain without its key
// would look complete).
func (i *Issuer) write(cfg *config.Config, chain [][]byte, key crypto.Signer) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	var certPEM []byte
	for _, der := range chain {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	certFile, keyFile, _ := cfg.CertFiles()
	if err := ShareDir(filepath.Dir(certFile), i.Group); err != nil {
		return err
	}
	if err := writeShared(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), i.Group); err != nil {
		return err
	}
	return writeShared(certFile, certPEM, i.Group)
}

// client is an ACME client with the account key kept in ACMEDir,
// trusting the directory through the system's roots and acme.ca_roots.
func (i *Issuer) client(cfg *config.Config) (*acme.Client, error) {
	key, err := accountKey(filepath.Join(cfg.ACMEDir(), "account.key"))
	if err != nil {
		return nil, err
	}
	roots, err := cfg.ACMERootPool()
	if err != nil {
		return nil, err
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	return &acme.Client{Key: key, DirectoryURL: cfg.ACME.Directory, UserAgent: "postline",
		HTTPClient: &http.Client{Transport: transport, Timeout: time.Minute}}, nil
}

// accountKey reads the account's key, making it the first time.
func accountKey(path string) (crypto.Signer, error) {
	if data, err := os.ReadFile(path); err == nil {
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("acme: %s holds no PEM key; remove it to make a new account", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		signer, ok := k.(crypto.Signer)
		if err != nil || !ok {
			return nil, fmt.Errorf("acme: %s: not a key (%v); remove it to make a new account", path, err)
		}
		return signer, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := durable.MkdirAll(durable.OS{}, filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	return key, writeAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// ShareDir makes dir readable by group gid (0750; -1 keeps it as it is),
// so that daemons running as that group's users read a new certificate
// when they reload.
func ShareDir(dir string, gid int) error {
	if err := durable.MkdirAll(durable.OS{}, dir, 0o750); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if gid < 0 {
		return nil
	}
	if err := os.Chmod(dir, 0o750); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return os.Chown(dir, -1, gid)
}

// writeShared writes path atomically, mode 0640 and group gid (-1: the
// caller's).
func writeShared(path string, data []byte, gid int) error {
	tmp := fmt.Sprintf("%s.tmp%d", path, os.Getpid())
	os.Remove(tmp)
	err := durable.Write(durable.OS{}, tmp, path, 0o640, func(w io.Writer) error {
		f := w.(*os.File)
		if err := f.Chmod(0o640); err != nil {
			return err
		}
		if err := f.Chown(-1, gid); err != nil {
			return err
		}
		_, err := f.Write(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return nil
}

// Share makes the certificate and key files (and their folder) readable
// by group gid; -1 leaves them as they are.
func Share(certFile, keyFile string, gid int) error {
	if err := ShareDir(filepath.Dir(certFile), gid); err != nil || gid < 0 {
		return err
	}
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chmod(f, 0o640); err != nil {
			return fmt.Errorf("certs: %w", err)
		}
		if err := os.Chown(f, -1, gid); err != nil {
			return fmt.Errorf("certs: %w", err)
		}
	}
	return nil
}
