package integration

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	querypb "go.temporal.io/api/query/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"golang.org/x/net/websocket"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/offboard/offboard/internal/codec"
	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/targets"
	"github.com/offboard/offboard/internal/tclient"
	"github.com/offboard/offboard/internal/testenv/devserver"
	"github.com/offboard/offboard/internal/workerapp"
	"github.com/offboard/offboard/workflows"
)

const chromium = "/usr/bin/chromium"

// TestWebUIShowsTheStory opens one run's page in the real Temporal Web UI,
// in headless Chromium, with payloads encrypted and the UI decrypting
// through the codec server, as `make run` sets it up. The page names the
// controls on its activities and shows the run's current details (phase,
// the gate and who it waits for, controls by state). Temporal itself holds
// those summaries and details only as ciphertext.
func TestWebUIShowsTheStory(t *testing.T) {
	if os.Getenv("OFFBOARD_BROWSER_TESTS") != "1" {
		t.Skip("browser test: set OFFBOARD_BROWSER_TESTS=1 (.ci/run does, after scripts/setup.sh installs chromium)")
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("%s is missing: run scripts/setup.sh (it installs the Debian package chromium): %v", chromium, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The key, and the codec server the browser calls, as `starter serve` runs it.
	keyFile := filepath.Join(t.TempDir(), "codec.key")
	key := make([]byte, codec.KeySize)
	_, err := rand.Read(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600))
	keys, err := codec.NewKeyring(map[string][]byte{"ui-1": key}, "ui-1")
	require.NoError(t, err)
	uiPort := freePort(t)
	ui := "http://127.0.0.1:" + uiPort
	codecSrv := httptest.NewServer(codec.Handler(keys, codec.HandlerOptions{AllowedOrigins: []string{ui}, Anonymous: true}))
	t.Cleanup(codecSrv.Close)

	// A dev server with its Web UI on, pointed at the codec server.
	dev, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:     filepath.Join(devserver.RepoRoot(t), "bin", "temporal"),
		LogLevel:         "error",
		ClientOptions:    &client.Options{Logger: quiet{}},
		SearchAttributes: workflows.SearchAttributes(),
		EnableUI:         true,
		UIPort:           uiPort,
		ExtraArgs:        []string{"--ui-codec-endpoint", codecSrv.URL},
		Stdout:           io.Discard,
		Stderr:           io.Discard,
	})
	require.NoError(t, err, "start the dev server with its UI")
	t.Cleanup(func() { _ = dev.Stop() })
	raw := dev.Client() // no codec: what Temporal stores
	s := newStackOn(t, &devserver.Server{Client: raw, HostPort: dev.FrontendHostPort()})

	s.config(defaultPolicy()) // the secrets' environment
	yaml := s.configYAML(defaultPolicy()) + fmt.Sprintf("codec:\n  keys: [{id: ui-1, file: %s}]\n  primary: ui-1\n", keyFile)
	cfg, err := config.Parse([]byte(yaml), "webui.yaml")
	require.NoError(t, err)
	c, err := tclient.Dial(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	tgts, err := targets.Build(ctx, cfg)
	require.NoError(t, err)
	wctx, stopWorker := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- workerapp.RunWith(wctx, cfg, c, tgts, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() { stopWorker(); require.NoError(t, <-done) })

	// A privileged leaver: contained, then waiting for an approver.
	s.temporal = &devserver.Server{Client: c, HostPort: dev.FrontendHostPort()}
	p := s.people[9]
	started := s.terminate(ctx, p, func(t *workflows.Termination) { t.Privileged = true })
	s.waitStatus(ctx, p.EmployeeID, "approval gate", func(st workflows.Status) bool { return st.Phase == workflows.PhaseAwaitingApproval })

	// Temporal holds the summaries and details as ciphertext only.
	assertEncrypted(ctx, t, raw, started.WorkflowID, started.RunID, p.Email)

	// The run's User Metadata tab: its summary, every activity and timer by
	// its summary, and the current details (rendered in frames of their own).
	page := fmt.Sprintf("%s/namespaces/default/workflows/%s/%s/user-metadata", ui, started.WorkflowID, started.RunID)
	wants := []string{
		"termination (voluntary) of " + p.EmployeeID, // the run's static summary
		"okta · suspend", "aws · deny_all_policy", // activities named by their control
		"approval due",                         // the approval timer
		"Phase: awaiting_approval",             // current details: the phase,
		"an approver other than the requester", // the open gate and who it waits for,
		"Controls done",                        // controls by state
	}
	text := renderPage(t, page, wants)
	for _, want := range wants {
		assert.Contains(t, text, want, "the run's page shows %q", want)
	}
	assert.NotContains(t, text, p.Email, "no e-mail in the summaries or details")
}

// renderPage opens url in headless Chromium, driven over the DevTools
// protocol: the Web UI keeps a long poll open on a running workflow, so
// --dump-dom (which waits for the network to settle) never returns. It waits
// until the page's text, frames included, holds every one of wants (the UI
// fills its sections as each request returns), at most a minute; saves a screenshot
// (webui-run.png, in OFFBOARD_ARTIFACTS when set) and the rendered DOM
// beside it; and returns the text.
func renderPage(t *testing.T, url string, wants []string) string {
	t.Helper()
	dir := t.TempDir()
	if a := os.Getenv("OFFBOARD_ARTIFACTS"); a != "" {
		dir = a
	}
	cmd := exec.CommandContext(t.Context(), chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--hide-scrollbars", "--window-size=1600,1400", "--user-data-dir="+t.TempDir(),
		"--remote-debugging-port=0", "--remote-allow-origins=http://localhost", "about:blank")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stderr)
	browser := ""
	for browser == "" && lines.Scan() {
		if _, after, ok := strings.Cut(lines.Text(), "DevTools listening on "); ok {
			browser = strings.TrimSpace(after)
		}
	}
	require.NotEmpty(t, browser, "Chromium printed no DevTools address")
	go func() {
		for lines.Scan() { // keep Chromium's stderr drained
		}
	}()
	page := devtools(t, browser)

	page.call(t, "Page.navigate", map[string]any{"url": url}, nil)
	text := ""
	deadline := time.Now().Add(60 * time.Second)
	shown := func() bool {
		for _, w := range wants {
			if !strings.Contains(text, w) {
				return false
			}
		}
		return true
	}
	for !shown() && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond) // polling the page: there is no event to wait for
		text = page.eval(t, `[document.body ? document.body.innerText : ""].concat(
			[...document.querySelectorAll("iframe")].map(f => f.contentDocument && f.contentDocument.body ? f.contentDocument.body.innerText : "")).join("\n")`)
	}
	var shot struct{ Data []byte }
	page.call(t, "Page.captureScreenshot", map[string]any{"format": "png"}, &shot)
	require.Greater(t, len(shot.Data), 10_000, "the screenshot shows a page")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "webui-run.png"), shot.Data, 0o644))
	dom := page.eval(t, "document.documentElement.outerHTML")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "webui-run.html"), []byte(dom), 0o644))
	t.Logf("screenshot of %s in %s", url, filepath.Join(dir, "webui-run.png"))
	return text
}

// cdp is a DevTools protocol session with one page.
type cdp struct {
	ws *websocket.Conn
	id int
}

// devtools attaches to the first page of the browser at its DevTools address.
func devtools(t *testing.T, browser string) *cdp {
	t.Helper()
	host, _, _ := strings.Cut(strings.TrimPrefix(browser, "ws://"), "/")
	resp, err := http.Get("http://" + host + "/json/list")
	require.NoError(t, err)
	defer resp.Body.Close()
	var targets []struct{ Type, WebSocketDebuggerURL string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&targets))
	for _, tg := range targets {
		if tg.Type == "page" {
			ws, err := websocket.Dial(tg.WebSocketDebuggerURL, "", "http://localhost")
			require.NoError(t, err)
			t.Cleanup(func() { _ = ws.Close() })
			return &cdp{ws: ws}
		}
	}
	t.Fatalf("no page in %s", host)
	return nil
}

// call sends one command and decodes its result, skipping events.
func (c *cdp) call(t *testing.T, method string, params, result any) {
	t.Helper()
	c.id++
	require.NoError(t, websocket.JSON.Send(c.ws, map[string]any{"id": c.id, "method": method, "params": params}))
	for {
		var msg struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		require.NoError(t, websocket.JSON.Receive(c.ws, &msg))
		if msg.ID != c.id {
			continue
		}
		require.Nil(t, msg.Error, "%s", method)
		if result != nil {
			require.NoError(t, json.Unmarshal(msg.Result, result))
		}
		return
	}
}

func (c *cdp) eval(t *testing.T, expr string) string {
	t.Helper()
	var r struct {
		Result struct {
			Value string `json:"value"`
		} `json:"result"`
	}
	c.call(t, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r)
	return r.Result.Value
}

// assertEncrypted reads, without the codec, every user metadata Temporal
// holds for the run (activity and timer summaries, the static summary, the
// current details) and finds each sealed by the codec.
func assertEncrypted(ctx context.Context, t *testing.T, raw client.Client, id, runID, email string) {
	t.Helper()
	var sealed, plain []string
	check := func(what string, p *commonpb.Payload) {
		if p == nil {
			return
		}
		if string(p.GetMetadata()[converter.MetadataEncoding]) == codec.Encoding {
			sealed = append(sealed, what)
		} else {
			plain = append(plain, what+": "+string(p.GetData()))
		}
	}
	iter := raw.GetWorkflowHistory(ctx, id, runID, false, 0)
	var history strings.Builder
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(t, err)
		check(ev.GetEventType().String(), ev.GetUserMetadata().GetSummary())
		b, _ := protojson.Marshal(ev)
		history.Write(b)
	}
	desc, err := raw.DescribeWorkflow(ctx, id, runID)
	require.NoError(t, err)
	check("static summary", desc.RawResponse.GetExecutionConfig().GetUserMetadata().GetSummary())
	q, err := raw.WorkflowService().QueryWorkflow(ctx, &workflowservice.QueryWorkflowRequest{
		Namespace: "default", Execution: &commonpb.WorkflowExecution{WorkflowId: id, RunId: runID},
		Query: &querypb.WorkflowQuery{QueryType: "__temporal_workflow_metadata"},
	})
	require.NoError(t, err)
	for _, p := range q.GetQueryResult().GetPayloads() {
		check("current details", p)
	}
	assert.Empty(t, plain, "user metadata Temporal holds in plaintext")
	assert.Contains(t, sealed, "static summary")
	assert.Contains(t, sealed, "current details")
	assert.Contains(t, sealed, "ActivityTaskScheduled", "activity summaries")
	assert.Contains(t, sealed, "TimerStarted", "timer summaries")
	assert.NotContains(t, history.String(), "okta · suspend", "no summary in clear in the history")
	assert.NotContains(t, history.String(), email)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// quiet keeps the SDK's chatter out of the test output.
type quiet struct{}

func (quiet) Debug(string, ...any) {}
func (quiet) Info(string, ...any)  {}
func (quiet) Warn(string, ...any)  {}
func (quiet) Error(string, ...any) {}
