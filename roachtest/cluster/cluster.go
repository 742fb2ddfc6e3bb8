package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/errors"
)

// Options configure a Cluster.
type Options struct {
	// Nodes is the number of nodes (at least 1).
	Nodes int
	// Dir holds stores/nN and logs/nN.log. It is created if missing; the
	// caller decides whether to keep it.
	Dir string
	// Logf receives one line per lifecycle event (start, ready, stop, kill).
	Logf func(format string, args ...any)
	// StopTimeout bounds the wait after SIGTERM before SIGKILL. Zero means
	// 45s: kvnode drains for up to 30s before it stops.
	StopTimeout time.Duration
	// ReadyTimeout bounds WaitReady. Zero means 90s, generous because the
	// nodes share two cores with other work on a CI machine.
	ReadyTimeout time.Duration
	// StartArgs are extra flags for every `kvnode start`.
	StartArgs []string
	// StartEnv are extra environment variables (KEY=VALUE) for every
	// `kvnode start`, after the runner's own environment; a node's own
	// (Node.SetEnv) come after these and win.
	StartEnv []string
}

// Cluster is a set of kvnode nodes on loopback ports. Create it with New;
// nothing runs until a node is started. Close kills whatever still runs.
type Cluster struct {
	opts   Options
	nodes  []*Node
	mu     sync.Mutex // serializes CLI log writes; guards secure
	secure bool       // MakeSecure ran
}

// New allocates ports and directories for opts.Nodes nodes. It starts
// nothing.
func New(opts Options) (*Cluster, error) {
	if opts.Nodes < 1 {
		return nil, errors.Newf("a cluster needs at least one node, not %d", opts.Nodes)
	}
	if opts.Dir == "" {
		return nil, errors.New("cluster.Options.Dir is required")
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = 45 * time.Second
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 90 * time.Second
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	for _, d := range []string{"stores", "logs"} {
		if err := os.MkdirAll(filepath.Join(opts.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	addrs, err := freeAddrs(4 * opts.Nodes)
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts}
	for i := 0; i < opts.Nodes; i++ {
		c.nodes = append(c.nodes, &Node{
			Index:      i + 1,
			ListenAddr: addrs[4*i], GossipAddr: addrs[4*i+1], SQLAddr: addrs[4*i+2], HTTPAddr: addrs[4*i+3],
			StoreDir: filepath.Join(opts.Dir, "stores", fmt.Sprintf("n%d", i+1)),
			LogPath:  filepath.Join(opts.Dir, "logs", fmt.Sprintf("n%d.log", i+1)),
			c:        c,
		})
	}
	return c, nil
}

// Nodes returns every node, n1 first.
func (c *Cluster) Nodes() []*Node { return append([]*Node(nil), c.nodes...) }

// Node returns node i, counting from 1 as the logs do.
func (c *Cluster) Node(i int) *Node { return c.nodes[i-1] }

// Size is the number of nodes.
func (c *Cluster) Size() int { return len(c.nodes) }

// Dir is the directory of stores and logs.
func (c *Cluster) Dir() string { return c.opts.Dir }

// LogDir is where every node's log (and init.log, cli.log) is.
func (c *Cluster) LogDir() string { return filepath.Join(c.opts.Dir, "logs") }

// Running returns the nodes whose process is alive.
func (c *Cluster) Running() []*Node {
	var out []*Node
	for _, n := range c.nodes {
		if n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// JoinList is every node's --listen-addr, the --join of each node.
func (c *Cluster) JoinList() string {
	var addrs []string
	for _, n := range c.nodes {
		addrs = append(addrs, n.ListenAddr)
	}
	return strings.Join(addrs, ",")
}

func (c *Cluster) logf(format string, args ...any) { c.opts.Logf(format, args...) }

// StartAll starts node i on bins[i-1] (or every node on bins[0] if only one
// binary is given), initializes the cluster through node initVia (1-based)
// and waits until every node is ready. On error the started nodes keep
// running; Close ends them.
func (c *Cluster) StartAll(ctx context.Context, bins []*Binary, initVia int) error {
	if len(bins) != 1 && len(bins) != len(c.nodes) {
		return errors.AssertionFailedf("StartAll: %d binaries for %d nodes", len(bins), len(c.nodes))
	}
	for i, n := range c.nodes {
		b := bins[0]
		if len(bins) > 1 {
			b = bins[i]
		}
		if err := n.Start(ctx, b); err != nil {
			return err
		}
	}
	if err := c.Init(ctx, c.Node(initVia)); err != nil {
		return err
	}
	return c.WaitReady(ctx)
}

// WaitReady waits until every running node is ready.
func (c *Cluster) WaitReady(ctx context.Context) error {
	for _, n := range c.Running() {
		if err := n.WaitReady(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Init bootstraps the cluster through node via with `kvnode init`, using
// that node's binary. Its output goes to logs/init.log.
func (c *Cluster) Init(ctx context.Context, via *Node) error {
	bin := via.Binary()
	if bin == nil {
		return errors.Newf("cannot init through %s: it was never started", via)
	}
	out, err := c.runCLI(ctx, bin, "init.log", "init", "--host="+via.ListenAddr, "--timeout=60s")
	if err != nil {
		if exitErr := via.exitError(""); exitErr != nil {
			return errors.Wrapf(exitErr, "kvnode init through %s failed (%v: %s)", via, err, out)
		}
		return errors.Wrapf(err, "kvnode init --host=%s (through %s): %s", via.ListenAddr, via, out)
	}
	c.logf("cluster initialized through %s: %s", via, strings.TrimSpace(out))
	return nil
}

// runCLI runs a kvnode CLI command (init, node ...) with the cluster's
// security flag (CLISecurityFlag), appends its output to logs/<logName>
// and returns the output.
func (c *Cluster) runCLI(ctx context.Context, bin *Binary, logName string, args ...string) (string, error) {
	return c.runCommand(ctx, bin, logName, append(args, c.CLISecurityFlag())...)
}

// CLISecurityFlag is the flag every init and node command needs:
// --insecure, or --certs-dir with root's certificate in secure mode.
func (c *Cluster) CLISecurityFlag() string { return c.securityFlag(c.ClientCertsDir()) }

// runCommand runs kvnode with args as they are, appends its output to
// logs/<logName> and returns the output.
func (c *Cluster) runCommand(ctx context.Context, bin *Binary, logName string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin.Path, args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	err := cmd.Run()
	c.mu.Lock()
	if f, ferr := os.OpenFile(filepath.Join(c.LogDir(), logName), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); ferr == nil {
		fmt.Fprintf(f, "=== %s %s %s (%s, %v)\n%s\n", start.Format(time.RFC3339Nano), bin.Name(), strings.Join(args, " "),
			time.Since(start).Round(time.Millisecond), err, buf.String())
		_ = f.Close()
	}
	c.mu.Unlock()
	return strings.TrimSpace(buf.String()), err
}

// UnexpectedExits returns one error per node whose process ended without
// being stopped or killed by us (a crash, a fatal error), each once. The
// runner calls it after every step: a node that dies on its own is a
// finding even if the workload did not notice.
func (c *Cluster) UnexpectedExits() []error {
	var errs []error
	for _, n := range c.nodes {
		n.mu.Lock()
		p := n.proc
		n.mu.Unlock()
		if p == nil || !p.exited() || p.expected.Load() || !p.reported.CompareAndSwap(false, true) {
			continue
		}
		errs = append(errs, errors.Newf("%s (pid %d, %s) exited on its own: %v; last lines of %s:\n%s",
			n, p.cmd.Process.Pid, p.bin.Name(), p.exitErr, n.LogPath, n.LogTail(20)))
	}
	return errs
}

// Close kills every node that still runs. It is safe to call more than
// once.
func (c *Cluster) Close() {
	for _, n := range c.nodes {
		if n.Running() {
			_ = n.Kill()
		}
	}
}

// Node is one kvnode process slot: fixed ports, store and log, and at most
// one running process at a time.
type Node struct {
	// Index is the node's position, from 1; logs call it nIndex. It is not
	// kvnode's node ID, which the cluster assigns (see NodeID).
	Index                                     int
	ListenAddr, GossipAddr, SQLAddr, HTTPAddr string
	StoreDir, LogPath                         string

	c      *Cluster
	mu     sync.Mutex
	proc   *process // current or last process
	nodeID int
	env    []string // SetEnv
}

// String is "n1".
func (n *Node) String() string { return fmt.Sprintf("n%d", n.Index) }

// process is one run of a node's binary.
type process struct {
	cmd      *exec.Cmd
	bin      *Binary
	started  time.Time
	done     chan struct{}
	exitErr  error       // valid once done is closed
	expected atomic.Bool // we asked it to stop: its exit is not a finding
	reported atomic.Bool // UnexpectedExits said so once
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// live tracks every node process of this OS process, for KillAll.
var live = struct {
	sync.Mutex
	m map[*process]struct{}
}{m: map[*process]struct{}{}}

// KillAll sends SIGKILL to every node process this program started that is
// still running, and returns how many. It is for signal handlers: it does
// not wait and keeps no logs in order.
func KillAll() int {
	live.Lock()
	defer live.Unlock()
	for p := range live.m {
		p.expected.Store(true)
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	return len(live.m)
}

// Running reports whether the node's process is alive.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil && !n.proc.exited()
}

// Binary is the binary of the current (or last) process, nil if the node
// never started.
func (n *Node) Binary() *Binary {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return nil
	}
	return n.proc.bin
}

// Pid is the current process's id, 0 if not running.
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil || n.proc.exited() {
		return 0
	}
	return n.proc.cmd.Process.Pid
}

// exitError describes the last process's exit ("exited" + what), nil if
// it has not exited. The exit counts as reported: UnexpectedExits will not
// repeat it.
func (n *Node) exitError(what string) error {
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	if p == nil || !p.exited() {
		return nil
	}
	p.reported.Store(true)
	return errors.Newf("%s (%s) exited%s: %s; last lines of %s:\n%s", n, p.bin.Name(), what, exitString(p.exitErr), n.LogPath, n.LogTail(15))
}

// Args are the flags of `kvnode start` for this node.
func (n *Node) Args() []string {
	// --insecure unless MakeSecure ran (every binary built from the tree
	// has both flags: secure transport belongs to no release).
	args := []string{"start", n.c.securityFlag(n.CertsDir()), "--store=" + n.StoreDir, "--listen-addr=" + n.ListenAddr, "--gossip-addr=" + n.GossipAddr,
		"--sql-addr=" + n.SQLAddr, "--http-addr=" + n.HTTPAddr, "--join=" + n.c.JoinList()}
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	return append(args, n.c.opts.StartArgs...)
}

// SetEnv sets extra environment variables (KEY=VALUE) for every later
// start of this node, replacing those of an earlier SetEnv; they come after
// the cluster's StartEnv, so they win. A testing knob that only some nodes
// get (KVNODE_TESTING_GROUP0_PAUSE) goes here.
func (n *Node) SetEnv(env ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.env = append([]string(nil), env...)
}

// Env is the extra environment of the node's next start: the cluster's
// StartEnv, then the node's own.
func (n *Node) Env() []string {
	n.c.mu.Lock()
	env := append([]string(nil), n.c.opts.StartEnv...)
	n.c.mu.Unlock()
	n.mu.Lock()
	defer n.mu.Unlock()
	return append(env, n.env...)
}

// environ is the environment of a process with extra variables env: nil
// (the runner's own) if there are none.
func environ(env []string) []string {
	if len(env) == 0 {
		return nil
	}
	return append(os.Environ(), env...)
}

// envPrefix is how a start's extra environment shows in the node's log.
func envPrefix(env []string) string {
	if len(env) == 0 {
		return ""
	}
	return strings.Join(env, " ") + " "
}

// Start starts the node's process on bin, with the node's store (kept
// across restarts), ports and extra environment (StartEnv, SetEnv). It does
// not wait for readiness. It fails, naming the port, if another process
// took one of the node's ports.
func (n *Node) Start(ctx context.Context, bin *Binary) error {
	if bin == nil {
		return errors.AssertionFailedf("%s: Start without a binary", n)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	env := n.Env()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil && !n.proc.exited() {
		return errors.AssertionFailedf("%s is already running (pid %d)", n, n.proc.cmd.Process.Pid)
	}
	if err := portTaken(n); err != nil {
		return err
	}
	f, err := os.OpenFile(n.LogPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	// Not CommandContext: a node outlives the step that started it.
	cmd := exec.Command(bin.Path, n.Args()...)
	cmd.Env = environ(env)
	fmt.Fprintf(f, "\n=== roachtest %s: starting %s on %s (%s)\n=== %s%s\n",
		time.Now().Format(time.RFC3339Nano), n, bin.Name(), bin.Origin, envPrefix(env), strings.Join(cmd.Args, " "))
	cmd.Stdout, cmd.Stderr = f, f
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return errors.Wrapf(err, "%s: starting %s", n, bin.Path)
	}
	p := &process{cmd: cmd, bin: bin, started: time.Now(), done: make(chan struct{})}
	live.Lock()
	live.m[p] = struct{}{}
	live.Unlock()
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(f, "=== roachtest %s: %s (pid %d) exited: %v\n", time.Now().Format(time.RFC3339Nano), n, cmd.Process.Pid, exitString(err))
		_ = f.Close()
		p.exitErr = err
		live.Lock()
		delete(live.m, p)
		live.Unlock()
		close(p.done)
	}()
	n.proc = p
	n.c.logf("%s: started %s (pid %d)", n, bin.Name(), cmd.Process.Pid)
	return nil
}

func exitString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Stop sends SIGTERM (kvnode drains, then stops) and waits up to the
// cluster's StopTimeout; then it sends SIGKILL. A node that needed SIGKILL
// is reported as an error, after it is gone: not stopping on SIGTERM is a
// bug worth failing a scenario for.
func (n *Node) Stop(ctx context.Context) error {
	p := n.current()
	if p == nil {
		return nil
	}
	p.expected.Store(true)
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(n.c.opts.StopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		n.c.logf("%s: stopped (SIGTERM) in %s", n, time.Since(start).Round(10*time.Millisecond))
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	if ctx.Err() != nil {
		return errors.Wrapf(ctx.Err(), "%s: interrupted while stopping; killed", n)
	}
	return errors.Newf("%s did not stop within %s of SIGTERM; killed it (see %s)", n, n.c.opts.StopTimeout, n.LogPath)
}

// Kill sends SIGKILL and waits for the process to be gone.
func (n *Node) Kill() error {
	p := n.current()
	if p == nil {
		return nil
	}
	p.expected.Store(true)
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		return errors.Newf("%s (pid %d) still runs 30s after SIGKILL", n, p.cmd.Process.Pid)
	}
	n.c.logf("%s: killed (SIGKILL)", n)
	return nil
}

// Pause stops the node's process with SIGSTOP: it keeps its sockets and its
// state but runs nothing (a stalled VM, a long GC or swap storm). Resume
// continues it.
func (n *Node) Pause() error {
	p := n.current()
	if p == nil {
		return errors.Newf("%s is not running", n)
	}
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return errors.Wrapf(err, "%s: SIGSTOP", n)
	}
	n.c.logf("%s: paused (SIGSTOP)", n)
	return nil
}

// Resume continues a node paused by Pause (SIGCONT).
func (n *Node) Resume() error {
	p := n.current()
	if p == nil {
		return errors.Newf("%s is not running", n)
	}
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		return errors.Wrapf(err, "%s: SIGCONT", n)
	}
	n.c.logf("%s: resumed (SIGCONT)", n)
	return nil
}

// Restart stops the node (SIGTERM, or SIGKILL if kill is set), starts it on
// bin with the same store and ports, and waits until it is ready.
func (n *Node) Restart(ctx context.Context, bin *Binary, kill bool) error {
	var err error
	if kill {
		err = n.Kill()
	} else {
		err = n.Stop(ctx)
	}
	if err != nil {
		return err
	}
	if err := n.Start(ctx, bin); err != nil {
		return err
	}
	return n.WaitReady(ctx)
}

// current returns the running process, or nil.
func (n *Node) current() *process {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil || n.proc.exited() {
		return nil
	}
	return n.proc
}

var httpClient = &http.Client{Timeout: 3 * time.Second}

// Health is the answer of GET /health?ready=1.
type Health struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason"`
	NodeID int    `json:"node_id"`
}

// Health asks the node whether it is ready for SQL. A 503 is not an error:
// it is a node that is not ready, with its reason.
func (n *Node) Health(ctx context.Context) (Health, error) {
	var h Health
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.c.scheme()+"://"+n.HTTPAddr+"/health?ready=1", nil)
	if err != nil {
		return h, err
	}
	resp, err := n.c.http().Do(req)
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err := json.Unmarshal(body, &h); err != nil {
		return h, errors.Wrapf(err, "%s: /health?ready=1 answered %d %q", n, resp.StatusCode, body)
	}
	h.Ready = h.Ready && resp.StatusCode == http.StatusOK
	if h.NodeID != 0 {
		n.mu.Lock()
		n.nodeID = h.NodeID
		n.mu.Unlock()
	}
	return h, nil
}

// WaitReady polls /health?ready=1 until the node is ready, the process
// exits (the error then carries its exit status and the end of its log), or
// the cluster's ReadyTimeout passes.
func (n *Node) WaitReady(ctx context.Context) error {
	p := n.current()
	if p == nil {
		if err := n.exitError(" before it was ready"); err != nil {
			return err
		}
		return errors.Newf("%s is not running", n)
	}
	ctx, cancel := context.WithTimeout(ctx, n.c.opts.ReadyTimeout)
	defer cancel()
	start := time.Now()
	last := "no answer yet"
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		h, err := n.Health(ctx)
		switch {
		case err == nil && h.Ready:
			n.c.logf("%s: ready (node ID %d) after %s", n, h.NodeID, time.Since(start).Round(10*time.Millisecond))
			return nil
		case err == nil:
			last = "not ready: " + h.Reason
		default:
			last = err.Error()
		}
		select {
		case <-p.done:
			return n.exitError(" before it was ready")
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return errors.Newf("%s (%s) not ready after %s (last answer: %s); last lines of %s:\n%s",
					n, p.bin.Name(), time.Since(start).Round(time.Second), last, n.LogPath, n.LogTail(15))
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// NodeID is the node ID the cluster gave this node (stable across restarts
// on the same store), asked from /health if not known yet.
func (n *Node) NodeID(ctx context.Context) (int, error) {
	n.mu.Lock()
	id := n.nodeID
	n.mu.Unlock()
	if id != 0 {
		return id, nil
	}
	h, err := n.Health(ctx)
	if err != nil {
		return 0, err
	}
	if h.NodeID == 0 {
		return 0, errors.Newf("%s has no node ID yet (%s)", n, h.Reason)
	}
	return h.NodeID, nil
}

// LogTail returns the last lines of the node's log.
func (n *Node) LogTail(lines int) string {
	return tail(n.LogPath, lines)
}

func tail(path string, lines int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	const window = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > window {
		_, _ = f.Seek(st.Size()-window, io.SeekStart)
	}
	data, _ := io.ReadAll(f)
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return "    " + strings.Join(all, "\n    ")
}
