package test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/lab"
)

// TestGRPCUnprivileged: GoBGP's gRPC API (no authentication of its own) is
// on a Unix socket in a directory only root can enter. An unprivileged
// user (uid 65534) in the router's namespace can neither add a path nor
// disable a neighbor, over the socket or over TCP; root's documented
// `gobgp --target unix://...` works.
func TestGRPCUnprivileged(t *testing.T) {
	needBinary(t, "/usr/bin/setpriv")
	// A world-readable base, so that only the socket directory the daemon
	// creates (mode 0700) keeps uid 65534 out, as /run does for the default
	// /run/xdprouter/gobgp.sock.
	base, err := os.MkdirTemp("", "xdprouter-grpc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	cli := filepath.Join(base, "gobgp") // bin is root-only: a copy nobody can run
	if err := copyFile(filepath.Join(bin, "gobgp"), cli, 0o755); err != nil {
		t.Fatal(err)
	}
	target := "unix://" + filepath.Join(base, "run", "gobgp.sock")

	r := newLab(t)
	r.edit = func(cfg string) string { // the lab's config has TCP; use a socket
		return strings.Replace(cfg, fmt.Sprintf("grpc-listen = \"127.0.0.1:%s\"", lab.GRPCPort), fmt.Sprintf("grpc-listen = %q", target), 1)
	}
	const nbr = "10.0.2.2" // configured; no BGP speaker there, which does not matter
	r.start(fmt.Sprintf("[router]\nasn = %d\nrouter-id = \"10.0.1.1\"\n\n[[neighbor]]\naddress = %q\npeer-asn = %d\n", lab.RouterASN, nbr, lab.UpstreamASN))

	root := func(args ...string) (string, error) {
		return r.Output("r", append([]string{cli, "--target", target}, args...)...)
	}
	nobody := func(args ...string) (string, error) {
		return r.Output("r", append([]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", cli}, args...)...)
	}
	r.poll(10*time.Second, func() error { // BGP starts after the API answers
		if out, err := root("neighbor"); err != nil || !strings.Contains(out, nbr) {
			return fmt.Errorf("root: gobgp --target %s neighbor: %v\n%s", target, err, out)
		}
		return nil
	})
	for _, args := range [][]string{
		{"--target", target, "global", "rib", "add", "203.0.113.0/24"},
		{"--target", target, "neighbor", nbr, "disable"},
		{"--target", target, "neighbor", "add", "10.0.2.9", "as", "65009"},
		{"-p", lab.GRPCPort, "global", "rib", "add", "203.0.113.0/24"}, // no TCP listener
		{"-p", lab.GRPCPort, "neighbor", nbr, "disable"},
	} {
		if out, err := nobody(args...); err == nil {
			t.Errorf("uid 65534: gobgp %s succeeded:\n%s", strings.Join(args, " "), out)
		}
	}
	// Nothing changed.
	if out, err := root("global", "rib"); err != nil || strings.Contains(out, "203.0.113.0/24") {
		t.Errorf("after the unprivileged attempts, global rib: %v\n%s", err, out)
	}
	if out, err := root("neighbor"); err != nil || strings.Contains(out, "10.0.2.9") {
		t.Errorf("after the unprivileged attempts, neighbors: %v\n%s", err, out)
	}
	for _, p := range r.status().Peers {
		if p.State == "admin-down" {
			t.Errorf("neighbor %s was disabled by uid 65534", p.Address)
		}
	}
	// The same command works for root: the attempts failed for lack of
	// permission, not because they were wrong.
	if out, err := root("global", "rib", "add", "203.0.113.0/24"); err != nil {
		t.Fatalf("root: gobgp global rib add: %v\n%s", err, out)
	}
	if out, err := root("global", "rib"); err != nil || !strings.Contains(out, "203.0.113.0/24") {
		t.Errorf("root's path not in the RIB: %v\n%s", err, out)
	}
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
