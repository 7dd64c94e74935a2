package kafkatest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/docker/go-connections/nat"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"github.com/testcontainers/testcontainers-go/modules/kafka"
	"github.com/testcontainers/testcontainers-go/modules/redpanda"
	"github.com/testcontainers/testcontainers-go/wait"
)

// KfakeImageRepo is the repository of the locally built kfake-broker
// image; its tag is a hash of the binary, so an unchanged broker is
// never rebuilt. Remove old ones with
// `docker image prune -a --filter label=org.kprod.kafkatest=kfake-broker`.
const KfakeImageRepo = "kprod/kfake-broker"

const (
	labelKey      = "org.kprod.kafkatest"
	labelPID      = "org.kprod.kafkatest.pid"
	labelHost     = "org.kprod.kafkatest.host"
	labelBuild    = "org.kprod.kafkatest.build"
	kprodModule   = "github.com/kprod/kprod"
	kfakePkg      = kprodModule + "/cmd/kfake-broker"
	containerPort = nat.Port("9092/tcp")
)

// newDocker returns a client for the engine named by the environment
// (DOCKER_HOST, or the default socket).
func newDocker() (*client.Client, error) {
	return client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
}

// probeDocker checks within timeout that a Docker engine answers, so a
// missing engine costs seconds, not testcontainers' retries (or its panic
// when it finds no engine at all).
func probeDocker(ctx context.Context, timeout time.Duration) error {
	if os.Getenv("DOCKER_HOST") == "" {
		if _, err := os.Stat("/var/run/docker.sock"); err != nil {
			return errSkip("no Docker engine: DOCKER_HOST is unset and /var/run/docker.sock is missing")
		}
	}
	cli, err := newDocker()
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	defer cli.Close()
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := cli.Ping(pctx); err != nil {
		return fmt.Errorf("no Docker engine answered within %v: %w", timeout, err)
	}
	reapLeftovers(ctx)
	return nil
}

// kfakeImage builds the kfake-broker image once per test process (every
// cluster of the process shares it) and returns its tag. It is memoised
// rather than rebuilt per test because linking the broker takes seconds.
var kfakeImage = sync.OnceValues(func() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return buildKfakeImage(ctx)
})

// KfakeImage builds (or finds) the kfake-broker image and returns its
// tag, "kprod/kfake-broker:<hash>". Start calls it; call it yourself to
// build the image ahead of the tests, in a TestMain say.
func KfakeImage() (string, error) { return kfakeImage() }

// buildLock serialises image builds and the removal of leftovers across
// the test processes of a machine (go test runs packages in parallel).
var buildLock = filepath.Join(os.TempDir(), "kafkatest-kfake-broker.lock")

func buildKfakeImage(ctx context.Context) (string, error) {
	cli, err := newDocker()
	if err != nil {
		return "", err
	}
	defer cli.Close()
	unlock, err := lockFile(buildLock)
	if err != nil {
		return "", fmt.Errorf("lock %s: %w", buildLock, err)
	}
	defer unlock()
	// Untagged images left by builds that raced (before this lock, or
	// by a killed process): only kafkatest's, by label.
	_, _ = cli.ImagesPrune(ctx, filters.NewArgs(filters.Arg("label", labelKey), filters.Arg("dangling", "true")))

	bin := os.Getenv(EnvKfakeBinary)
	if bin == "" {
		arch := runtime.GOARCH
		if v, err := cli.ServerVersion(ctx); err == nil && v.Arch != "" {
			arch = v.Arch
		}
		src, err := brokerSource(ctx)
		if err != nil {
			return "", err
		}
		// A released kprod version (no local replace) builds the same
		// binary every time: find the image by that, without a build.
		buildKey := ""
		if src.pinned {
			sum := sha256.Sum256([]byte(src.goMod + "\n" + arch))
			buildKey = hex.EncodeToString(sum[:])[:16]
			if imgs, err := cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("label", labelBuild+"="+buildKey))}); err == nil {
				for _, im := range imgs {
					if len(im.RepoTags) > 0 {
						return im.RepoTags[0], nil
					}
				}
			}
		}
		dir, err := os.MkdirTemp("", "kafkatest-kfake-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(dir)
		bin = filepath.Join(dir, "kfake-broker")
		if err := goBuild(ctx, src, filepath.Join(dir, "build"), bin, arch); err != nil {
			return "", err
		}
		return imageFor(ctx, cli, bin, buildKey)
	}
	return imageFor(ctx, cli, bin, "")
}

// imageFor tags an image by the hash of the binary and builds it unless
// the engine has it.
func imageFor(ctx context.Context, cli *client.Client, bin, buildKey string) (string, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", fmt.Errorf("read kfake-broker binary: %w", err)
	}
	sum := sha256.Sum256(data)
	tag := KfakeImageRepo + ":" + hex.EncodeToString(sum[:])[:16]
	if _, err := cli.ImageInspect(ctx, tag); err == nil {
		return tag, nil
	}
	buildCtx, err := imageContext(data)
	if err != nil {
		return "", err
	}
	labels := map[string]string{labelKey: "kfake-broker"}
	if buildKey != "" {
		labels[labelBuild] = buildKey
	}
	resp, err := cli.ImageBuild(ctx, buildCtx, build.ImageBuildOptions{
		Tags:        []string{tag},
		Remove:      true,
		ForceRemove: true,
		Labels:      labels,
	})
	if err != nil {
		return "", fmt.Errorf("docker build %s: %w", tag, err)
	}
	defer resp.Body.Close()
	if err := jsonmessage.DisplayJSONMessagesStream(resp.Body, io.Discard, 0, false, nil); err != nil {
		return "", fmt.Errorf("docker build %s: %w", tag, err)
	}
	return tag, nil
}

// source is a module that builds cmd/kfake-broker at the versions of kprod
// and franz-go this test binary was built with.
type source struct {
	goMod  string
	goSum  []byte
	pinned bool // no directory replacement: the same go.mod builds the same binary
}

// brokerSource writes the go.mod of a throwaway module requiring the
// github.com/kprod/kprod the test's module uses (asked of the go command
// in the test's directory: a test binary records no dependencies), at the
// same version or replacement, and takes go.sum from the test's module.
// Building there, not in the test's module, keeps the test's go.mod,
// vendor directory and flags out of it.
func brokerSource(ctx context.Context) (*source, error) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return nil, errSkip("no go command on the PATH to build the kfake-broker image (set " + EnvKfakeBinary + " to a prebuilt binary)")
	}
	out, err := goEnv(goCmd, "GOVERSION", "GOMOD")
	if err != nil {
		return nil, err
	}
	goVersion, mainMod := strings.TrimPrefix(out[0], "go"), out[1]
	if i := strings.IndexAny(goVersion, " -"); i >= 0 {
		goVersion = goVersion[:i]
	}
	// -mod=readonly: the default -mod=vendor of a vendored module cannot
	// answer -m queries.
	cmd := exec.CommandContext(ctx, goCmd, "list", "-mod=readonly", "-m", "-json", kprodModule)
	cmd.Env = listEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	js, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -m %s in %s: %w: %s", kprodModule, cwd(), err, strings.TrimSpace(stderr.String()))
	}
	type mod struct {
		Path, Version, Dir string
		Replace            *mod
	}
	var m mod
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, fmt.Errorf("go list -m %s: %w", kprodModule, err)
	}
	src := &source{pinned: true}
	version, replace := m.Version, ""
	switch r := m.Replace; {
	case r != nil && r.Version == "":
		replace, src.pinned = r.Dir, false
	case r != nil:
		replace = r.Path + " " + r.Version
	case version == "" && m.Dir != "": // a workspace module
		replace, src.pinned = m.Dir, false
	}
	if version == "" {
		version = "v0.0.0-00010101000000-000000000000"
	}
	src.goMod = fmt.Sprintf("module kafkatest.invalid/kfake-broker-build\n\ngo %s\n\nrequire %s %s\n", goVersion, kprodModule, version)
	if replace != "" {
		src.goMod += fmt.Sprintf("\nreplace %s => %s\n", kprodModule, replace)
	}
	if mainMod != "" && mainMod != os.DevNull {
		src.goSum, _ = os.ReadFile(filepath.Join(filepath.Dir(mainMod), "go.sum"))
	}
	return src, nil
}

// listEnv is the test's environment without the flags that would change
// what go list reports (a workspace, GOWORK, is kept: it decides which
// kprod the test uses).
func listEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOFLAGS=") {
			env = append(env, kv)
		}
	}
	return env
}

func cwd() string { d, _ := os.Getwd(); return d }

// buildEnv is the environment of the go command building the broker:
// the test's own GOFLAGS (-race, -mod=vendor, -cover...), cgo settings,
// target and workspace never leak into it, and the flags it needs are
// given explicitly. GOPROXY, GOPRIVATE, GONOSUMDB and the caches are
// kept, so private proxies keep working.
func buildEnv(arch string) []string {
	drop := []string{"GOFLAGS=", "CGO_ENABLED=", "CGO_CFLAGS=", "CGO_LDFLAGS=", "CC=", "CXX=", "GOOS=", "GOARCH=", "GOWORK=", "GOAMD64=", "GOARM64=", "GOEXPERIMENT=", "GOTOOLCHAIN="}
	var env []string
	for _, kv := range os.Environ() {
		if !slices.ContainsFunc(drop, func(p string) bool { return strings.HasPrefix(kv, p) }) {
			env = append(env, kv)
		}
	}
	return append(env, "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local", "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
}

func goEnv(goCmd string, vars ...string) ([]string, error) {
	cmd := exec.Command(goCmd, append([]string{"env"}, vars...)...)
	cmd.Env = buildEnv(runtime.GOARCH)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go env: %w", err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != len(vars) {
		return nil, fmt.Errorf("go env %v: unexpected output %q", vars, out)
	}
	return lines, nil
}

// goBuild compiles the static kfake-broker with the machine's go command
// in a module of its own (see brokerSource).
func goBuild(ctx context.Context, src *source, dir, out, arch string) error {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return errSkip("no go command on the PATH to build the kfake-broker image (set " + EnvKfakeBinary + " to a prebuilt binary)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(src.goMod), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), src.goSum, 0o644); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", out, kfakePkg)
	cmd.Dir = dir
	cmd.Env = buildEnv(arch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s (CGO_ENABLED=0 GOOS=linux GOARCH=%s, in a module at %s): %w: %s", kfakePkg, arch, dir, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// reapOnce removes, once per process, the containers that kafkatest
// started in test processes of this machine that have since died (a test
// binary killed by -timeout never runs its cleanups, and without
// testcontainers' reaper nothing else removes them).
var reapOnce sync.Once

func reapLeftovers(ctx context.Context) {
	reapOnce.Do(func() {
		cli, err := newDocker()
		if err != nil {
			return
		}
		defer cli.Close()
		host, _ := os.Hostname()
		ctrs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", labelKey))})
		if err != nil {
			return
		}
		for _, ct := range ctrs {
			pid, err := strconv.Atoi(ct.Labels[labelPID])
			switch {
			case err != nil: // from a kafkatest without owner labels
				if time.Since(time.Unix(ct.Created, 0)) < time.Hour {
					continue
				}
			case ct.Labels[labelHost] != host || processAlive(pid):
				continue
			}
			_ = cli.ContainerRemove(ctx, ct.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		}
	})
}

// ownerLabels mark a container with the process that started it, so a
// later process can tell a leftover from a neighbour's running broker.
func ownerLabels(kind string) map[string]string {
	host, _ := os.Hostname()
	return map[string]string{labelKey: kind, labelPID: strconv.Itoa(os.Getpid()), labelHost: host}
}

// dockerfile is the whole image: one static binary, nothing to pull.
const dockerfile = `FROM scratch
COPY kfake-broker /kfake-broker
ENTRYPOINT ["/kfake-broker"]
`

func imageContext(bin []byte) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte(dockerfile)},
		{"kfake-broker", 0o755, bin},
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

// freePorts returns n distinct ports on 127.0.0.1 that were free a
// moment ago. The container publishes its brokers there for its whole
// life, so the advertised addresses stay right across docker stop and
// start.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var ports []int
	for range n { // held open together, so the n are distinct
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func freePort() (int, error) {
	ports, err := freePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// publishOn publishes container port containerPort+i on 127.0.0.1:ports[i].
func publishOn(ports ...int) testcontainers.CustomizeRequestOption {
	return testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
		hc.PortBindings = nat.PortMap{}
		for i, p := range ports {
			hc.PortBindings[kfakePort(i)] = []nat.PortBinding{{HostIP: "127.0.0.1", HostPort: strconv.Itoa(p)}}
		}
	})
}

// kfakePort is broker i's port in the container: kfake-broker listens on
// consecutive ports from the -listen port.
func kfakePort(i int) nat.Port {
	return nat.Port(strconv.Itoa(containerPort.Int()+i) + "/tcp")
}

// containerized is a broker in a container.
type containerized struct {
	t           testing.TB
	ctr         testcontainers.Container
	docker      *client.Client
	addrs       []string
	restartable bool // the published port survives docker stop/start
}

// Where the broker's certificate and key go in the kfake-broker
// container (FROM scratch: the copy creates the directory).
const (
	containerCertFile = "/etc/kfake-broker/tls/broker.crt"
	containerKeyFile  = "/etc/kfake-broker/tls/broker.key"
)

// kfakeArgs are the kfake-broker flags for cfg and sec, its brokers
// advertised on the host addresses they are published on.
func kfakeArgs(cfg *config, sec *security, advertised []string) []string {
	args := []string{
		"-listen", "0.0.0.0:" + containerPort.Port(),
		"-brokers", strconv.Itoa(len(advertised)),
		// One address per broker: the host ports free at start are
		// rarely consecutive.
		"-advertise", strings.Join(advertised, ","),
		"-data-dir", "/data",
		"-log-level", "warn",
		"-partitions", strconv.Itoa(int(cfg.partitions)),
	}
	if cfg.autoCreate {
		args = append(args, "-auto-create-topics")
	}
	if sec != nil && sec.certPEM != nil {
		args = append(args, "-tls-cert", containerCertFile, "-tls-key", containerKeyFile)
	}
	if sec != nil && sec.sasl != nil {
		// A test cluster's password, visible in docker inspect
		// while the container lives.
		args = append(args, "-sasl", string(sec.sasl.Mechanism)+":"+sec.sasl.Username+":"+sec.sasl.Password)
	}
	return args
}

// kfakeFiles are the files copied into the container before it starts.
func kfakeFiles(sec *security) []testcontainers.ContainerFile {
	if sec == nil || sec.certPEM == nil {
		return nil
	}
	return []testcontainers.ContainerFile{
		{Reader: bytes.NewReader(sec.certPEM), ContainerFilePath: containerCertFile, FileMode: 0o644},
		{Reader: bytes.NewReader(sec.keyPEM), ContainerFilePath: containerKeyFile, FileMode: 0o600},
	}
}

func startKfakeContainer(ctx context.Context, t testing.TB, cfg *config, sec *security) (*containerized, error) {
	tag, err := kfakeImage()
	if err != nil {
		return nil, fmt.Errorf("kfake-broker image: %w", err)
	}
	// The first build may take a while (it has its own bound); the
	// start timeout is for starting the container.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.startTimeout)
	defer cancel()
	exposed := make([]string, cfg.brokers)
	for i := range exposed {
		exposed[i] = string(kfakePort(i))
	}
	var lastErr error
	for range 3 { // a port taken between freePorts and docker run: try others
		ports, err := freePorts(cfg.brokers)
		if err != nil {
			return nil, err
		}
		addrs := make([]string, len(ports))
		for i, p := range ports {
			addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		}
		ctr, err := testcontainers.Run(ctx, tag,
			testcontainers.WithCmd(kfakeArgs(cfg, sec, addrs)...),
			testcontainers.WithFiles(kfakeFiles(sec)...),
			testcontainers.WithExposedPorts(exposed...),
			publishOn(ports...),
			testcontainers.WithLabels(ownerLabels("kfake-broker")),
			testcontainers.WithWaitStrategy(wait.ForLog("kfake-broker listening on").WithStartupTimeout(30*time.Second)),
			testcontainers.WithLogger(tclog.TestLogger(t)),
		)
		if err != nil {
			lastErr = containerErr(err)
			terminate(ctr)
			if strings.Contains(err.Error(), "address already in use") || strings.Contains(err.Error(), "port is already allocated") {
				continue
			}
			return nil, lastErr
		}
		return newContainerized(t, ctr, addrs, true)
	}
	return nil, lastErr
}

// containerErr explains the failure everyone without a registry hits
// first.
func containerErr(err error) error {
	if strings.Contains(err.Error(), "ryuk") || strings.Contains(err.Error(), "reaper") {
		return fmt.Errorf("%w (the reaper image cannot be pulled: set TESTCONTAINERS_RYUK_DISABLED=true; kafkatest removes its containers itself)", err)
	}
	return err
}

func terminate(ctr testcontainers.Container) {
	if ctr == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = ctr.Terminate(ctx)
}

func newContainerized(t testing.TB, ctr testcontainers.Container, addrs []string, restartable bool) (*containerized, error) {
	cli, err := newDocker()
	if err != nil {
		terminate(ctr)
		return nil, err
	}
	return &containerized{t: t, ctr: ctr, docker: cli, addrs: addrs, restartable: restartable}, nil
}

func (c *containerized) brokers() []string { return c.addrs }

func (c *containerized) stop(ctx context.Context) error {
	if !c.restartable {
		return fmt.Errorf("%w: this image's module publishes a new port on each start", ErrUnsupported)
	}
	timeout := 10 * time.Second
	return c.ctr.Stop(ctx, &timeout)
}

func (c *containerized) start(ctx context.Context) error {
	if !c.restartable {
		return ErrUnsupported
	}
	return c.ctr.Start(ctx)
}

func (c *containerized) pause(ctx context.Context) error {
	return c.docker.ContainerPause(ctx, c.ctr.GetContainerID())
}

func (c *containerized) unpause(ctx context.Context) error {
	return c.docker.ContainerUnpause(ctx, c.ctr.GetContainerID())
}

func (c *containerized) close(ctx context.Context) error {
	defer c.docker.Close()
	id := c.ctr.GetContainerID()
	if insp, err := c.docker.ContainerInspect(ctx, id); err == nil && insp.State != nil && insp.State.Paused {
		_ = c.docker.ContainerUnpause(ctx, id)
	}
	if c.t.Failed() {
		c.logTail(ctx, 40)
	}
	return c.ctr.Terminate(ctx)
}

// logTail copies the container's last lines into the test log.
func (c *containerized) logTail(ctx context.Context, n int) {
	rc, err := c.docker.ContainerLogs(ctx, c.ctr.GetContainerID(), container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(n)})
	if err != nil {
		return
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 64<<10))
	c.t.Logf("kafkatest: last container log lines:\n%s", b)
}

// startImage runs a real broker image. The image must be local already or
// pullable within ctx; a failed pull is reported at once (no retries).
func startImage(ctx context.Context, t testing.TB, cfg *config) (*containerized, error) {
	img := cfg.image
	if err := ensureImage(ctx, img); err != nil {
		return nil, err
	}
	logger := testcontainers.WithLogger(tclog.TestLogger(t))
	labels := testcontainers.WithLabels(ownerLabels("image"))
	autoCreate := strconv.FormatBool(cfg.autoCreate)
	switch name := strings.ToLower(img); {
	case strings.Contains(name, "redpanda"):
		opts := []testcontainers.ContainerCustomizer{logger, labels}
		if cfg.autoCreate {
			opts = append(opts, redpanda.WithAutoCreateTopics())
		}
		ctr, err := redpanda.Run(ctx, img, opts...)
		if err != nil {
			terminate(ctr)
			return nil, containerErr(err)
		}
		addr, err := ctr.KafkaSeedBroker(ctx)
		if err != nil {
			terminate(ctr)
			return nil, err
		}
		return newContainerized(t, ctr, []string{addr}, false)
	case strings.Contains(name, "confluent-local"):
		ctr, err := kafka.Run(ctx, img, kafka.WithClusterID("kafkatest"), logger, labels,
			testcontainers.WithEnv(map[string]string{"KAFKA_AUTO_CREATE_TOPICS_ENABLE": autoCreate}))
		if err != nil {
			terminate(ctr)
			return nil, containerErr(err)
		}
		addrs, err := ctr.Brokers(ctx)
		if err != nil {
			terminate(ctr)
			return nil, err
		}
		return newContainerized(t, ctr, addrs, false)
	default:
		return startApacheKafka(ctx, t, img, autoCreate, logger)
	}
}

// startApacheKafka runs apache/kafka (or an image configured like it) as
// a single KRaft node published on a fixed port, so it can be stopped and
// started with its data.
func startApacheKafka(ctx context.Context, t testing.TB, img, autoCreate string, logger testcontainers.ContainerCustomizer) (*containerized, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ctr, err := testcontainers.Run(ctx, img,
		testcontainers.WithEnv(map[string]string{
			"KAFKA_NODE_ID":                                  "1",
			"KAFKA_PROCESS_ROLES":                            "broker,controller",
			"KAFKA_LISTENERS":                                "PLAINTEXT://:9092,CONTROLLER://:9093",
			"KAFKA_ADVERTISED_LISTENERS":                     "PLAINTEXT://" + addr,
			"KAFKA_CONTROLLER_LISTENER_NAMES":                "CONTROLLER",
			"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":           "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
			"KAFKA_CONTROLLER_QUORUM_VOTERS":                 "1@localhost:9093",
			"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
			"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
			"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "1",
			"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":         "0",
			"KAFKA_NUM_PARTITIONS":                           "3",
			"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                autoCreate,
		}),
		testcontainers.WithExposedPorts(string(containerPort)),
		publishOn(port),
		testcontainers.WithLabels(ownerLabels("image")),
		testcontainers.WithWaitStrategy(wait.ForLog("Kafka Server started").WithStartupTimeout(2*time.Minute)),
		logger,
	)
	if err != nil {
		terminate(ctr)
		return nil, containerErr(err)
	}
	return newContainerized(t, ctr, []string{addr}, true)
}

// ensureImage pulls img unless the engine has it, once and within ctx.
func ensureImage(ctx context.Context, img string) error {
	cli, err := newDocker()
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.ImageInspect(ctx, img); err == nil {
		return nil
	}
	rc, err := cli.ImagePull(ctx, img, image.PullOptions{})
	if err != nil {
		return fmt.Errorf("image %s is not local and cannot be pulled: %w", img, err)
	}
	defer rc.Close()
	if err := jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, nil); err != nil {
		return fmt.Errorf("pull %s: %w", img, err)
	}
	if _, err := cli.ImageInspect(ctx, img); err != nil {
		return errors.Join(fmt.Errorf("pull %s: image still missing", img), err)
	}
	return nil
}
