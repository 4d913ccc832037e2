package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gatehouse "github.com/gatehouse/gatehouse"
)

// writeSelfSigned writes a certificate for 127.0.0.1 and its key to
// certFile and keyFile, and returns a pool that trusts it.
func writeSelfSigned(t *testing.T, certFile, keyFile string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gatehouse test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{filepath.Dir(certFile), filepath.Dir(keyFile)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), 0o600)
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})), 0o600)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// rejectScript is a validate script that answers status.
func rejectScript(status string) string {
	return "exports.validate = function (req) { return {reject: {status: " + status + "}}; };\n"
}

// A configuration started from another working directory (a service
// manager starts it in /) finds its certificate, key and script next to
// it, in check and in run; the script host watches the file it found; an
// admin reload of the unchanged file changes nothing; /admin/config shows
// the resolved paths.
func TestRunResolvesPathsAgainstTheConfigDirectory(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") }))
	defer app.Close()
	conf := filepath.Join(t.TempDir(), "etc", "gatehouse")
	pool := writeSelfSigned(t, filepath.Join(conf, "tls", "cert.pem"), filepath.Join(conf, "tls", "key.pem"))
	if err := os.MkdirAll(filepath.Join(conf, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(conf, "scripts", "validate.js")
	writeFile(t, script, rejectScript("418"), 0o644)
	addr := freeAddr(t)
	path := filepath.Join(conf, "gatehouse.yaml")
	writeFile(t, path, `listeners:
  - name: public
    address: "`+addr+`"
    tls: {cert: tls/cert.pem, key: tls/key.pem}
admin: {address: "127.0.0.1:0", token: s3cret}
logging: {access_log: false}
services: [{name: s, endpoints: ["`+app.Listener.Addr().String()+`"]}]
routes: [{name: r, service: s}]
scripts: [{name: v, file: scripts/validate.js}]
hooks: [{script: v}]
`, 0o644)
	t.Chdir(t.TempDir())

	var out, errb bytes.Buffer
	if code := run([]string{"check", path}, &out, &errb); code != 0 {
		t.Fatalf("check from another directory: exit %d, out %q, errors:\n%s", code, out.String(), errb.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	started := make(chan *gatehouse.Gateway, 1)
	exited := make(chan int, 1)
	go func() { exited <- serveFile(ctx, path, "", logs, func(g *gatehouse.Gateway) { started <- g }) }()
	var g *gatehouse.Gateway
	select {
	case g = <-started:
	case code := <-exited:
		t.Fatalf("run exited %d; logs:\n%s", code, logs.String())
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	status := func() int {
		resp, err := c.Get("https://" + addr + "/")
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; logs:\n%s", what, logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("the script's answer over TLS", func() bool { return status() == 418 })
	if !strings.Contains(logs.String(), `"file":"`+script+`"`) {
		t.Errorf("the script host does not name the resolved path %s:\n%s", script, logs.String())
	}

	// The script host watches the file next to the configuration.
	tmp := filepath.Join(conf, "scripts", ".validate.js.tmp")
	writeFile(t, tmp, rejectScript("419"), 0o644)
	if err := os.Rename(tmp, script); err != nil {
		t.Fatal(err)
	}
	waitFor("the changed script served", func() bool { return status() == 419 })

	admin := "http://" + g.AdminAddr().String()
	adminDo := func(method, path string) string {
		t.Helper()
		req, _ := http.NewRequest(method, admin+path, nil)
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return string(b)
	}
	dump := adminDo("GET", "/admin/config")
	for _, want := range []string{"file: " + script, "cert: " + filepath.Join(conf, "tls", "cert.pem"), "key: " + filepath.Join(conf, "tls", "key.pem")} {
		if !strings.Contains(dump, want) {
			t.Errorf("/admin/config does not show %q:\n%s", want, dump)
		}
	}

	// A reload of the unchanged file keeps the running script host: no
	// script is loaded again.
	loaded := strings.Count(logs.String(), "script loaded")
	if loaded != 1 {
		t.Fatalf("%d script loads before the reload, want 1; logs:\n%s", loaded, logs.String())
	}
	adminDo("POST", "/admin/reload")
	waitFor("the reload logged", func() bool {
		return strings.Contains(logs.String(), "configuration reloaded through the admin API")
	})
	if n := strings.Count(logs.String(), "script loaded"); n != loaded {
		t.Errorf("the reload of an unchanged file loaded the script again (%d loads); logs:\n%s", n, logs.String())
	}
	if got := status(); got != 419 {
		t.Errorf("after the reload: status %d, want 419", got)
	}

	cancel()
	if code := <-exited; code != 0 {
		t.Fatalf("exit code %d; logs:\n%s", code, logs.String())
	}
}

// check refuses a relative file that is neither next to the configuration
// nor in the working directory, at its key, naming the path it tried; a
// plugin binary found next to the configuration gets as far as starting;
// a configuration written for the working directory still checks.
func TestCheckResolvesPathsAgainstTheConfigDirectory(t *testing.T) {
	root := t.TempDir()
	conf := filepath.Join(root, "sub", "dir")
	if err := os.MkdirAll(filepath.Join(conf, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(conf, "bin", "notaplugin"), "#!/bin/sh\nexit 3\n", 0o755)
	path := filepath.Join(conf, "g.yaml")
	writeFile(t, path, `listeners: [{name: p, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
services: [{name: s, endpoints: ["127.0.0.1:9"]}]
routes: [{name: r, service: s}]
scripts: [{name: v, file: scripts/validate.js}]
plugins: [{name: p, path: bin/notaplugin, start_timeout: 5s}]
`, 0o644)
	t.Chdir(t.TempDir())
	var out, errb bytes.Buffer
	if code := run([]string{"check", path}, &out, &errb); code != 1 {
		t.Fatalf("check: exit %d, out %q, errors:\n%s", code, out.String(), errb.String())
	}
	want := path + `:5:21: scripts[0].file: cannot read "` + filepath.Join(conf, "scripts", "validate.js") +
		`": no such file or directory ("scripts/validate.js" is relative: it was looked for in the configuration file's directory, then in the working directory)`
	if !strings.Contains(errb.String(), want+"\n") {
		t.Errorf("check's errors:\n%s\nwant a line:\n%s", errb.String(), want)
	}

	// The script in the working directory (the repository root, with -c
	// sub/dir/g.yaml) is used; the plugin next to the configuration is
	// started, and fails as that binary does.
	if err := os.MkdirAll(filepath.Join(root, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "scripts", "validate.js"), rejectScript("403"), 0o644)
	t.Chdir(root)
	out.Reset()
	errb.Reset()
	rel := filepath.Join("sub", "dir", "g.yaml")
	code := run([]string{"check", "-c", rel}, &out, &errb)
	if want := rel + `:6:21: plugins[0].path: plugin "p" did not start`; code != 1 || !strings.Contains(errb.String(), want) {
		t.Fatalf("check: exit %d, errors:\n%s\nwant %q", code, errb.String(), want)
	}
	if lines := strings.Split(strings.TrimSpace(errb.String()), "\n"); len(lines) != 1 {
		t.Errorf("check: want the plugin's error alone, got:\n%s", errb.String())
	}
}
