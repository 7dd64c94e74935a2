package chaos

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	label      = "org.kprod.chaos"
	netName    = "kprod-chaos-net"
	subnet     = "172.31.251.0/24"
	brokerIP   = "172.31.251.10"
	brokerAddr = brokerIP + ":9092"
	brokerName = "kprod-chaos-broker"
	imageRepo  = "kprod-chaos"
)

// producerIP is incarnation inc's address (a restarted producer gets a new
// container).
func producerIP(inc int) string { return "172.31.251." + strconv.Itoa(20+inc) }

func workloadName(inc int) string { return "kprod-chaos-wl-" + strconv.Itoa(inc) }

// sh runs a command with a bound and returns its combined output.
func sh(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

func docker(args ...string) (string, error) { return sh(90*time.Second, "docker", args...) }

// dockerAvailable says why the campaign cannot run here, or "".
func dockerAvailable() string {
	if _, err := exec.LookPath("docker"); err != nil {
		return "no docker command on the PATH"
	}
	if _, err := sh(15*time.Second, "docker", "info", "--format", "{{.ServerVersion}}"); err != nil {
		return "no Docker engine answers: " + err.Error()
	}
	return ""
}

// cleanup removes everything a campaign (this one or a killed one) left:
// containers, the network and images, all found by label.
func cleanup() {
	if ids, _ := docker("ps", "-aq", "--filter", "label="+label); ids != "" {
		docker(append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...)
	}
	if ids, _ := docker("network", "ls", "-q", "--filter", "label="+label); ids != "" {
		docker(append([]string{"network", "rm"}, strings.Fields(ids)...)...)
	}
	if ids, _ := docker("images", "-q", "--filter", "label="+label); ids != "" {
		docker(append([]string{"rmi", "-f"}, strings.Fields(ids)...)...)
	}
}

// buildImage compiles the broker and the workload statically and builds
// a FROM scratch image holding both (nothing is pulled). It also returns
// the path of a host copy of kprod-chaos, for the checker.
func buildImage(t *testing.T, dir string) (image, checker string) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"kfake-broker", "kprod-chaos"} {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, pkg), "./cmd/"+pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/%s: %v\n%s", pkg, err, out)
		}
	}
	df := "FROM scratch\nCOPY kfake-broker /kfake-broker\nCOPY kprod-chaos /kprod-chaos\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	image = imageRepo + ":" + strconv.Itoa(os.Getpid())
	if _, err := sh(5*time.Minute, "docker", "build", "-q", "--label", label+"=image", "-t", image, dir); err != nil {
		t.Fatal(err)
	}
	return image, filepath.Join(dir, "kprod-chaos")
}

// waitTCP waits until addr accepts connections.
func waitTCP(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting connections after %v: %w", addr, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func containerPID(name string) (string, error) {
	return docker("inspect", "-f", "{{.State.Pid}}", name)
}

// nsIptables runs iptables in a container's network namespace.
func nsIptables(name string, args ...string) error {
	pid, err := containerPID(name)
	if err != nil {
		return err
	}
	_, err = sh(20*time.Second, "nsenter", append([]string{"-t", pid, "-n", "iptables"}, args...)...)
	return err
}
