package evidence_test

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/evidence"
)

const chromiumPath = "/usr/bin/chromium"

// screenshot renders a local HTML file in headless Chromium, offline.
func screenshot(t *testing.T, html string) image.Image {
	t.Helper()
	if os.Getenv("OFFBOARD_BROWSER_TESTS") != "1" {
		t.Skip("browser test: set OFFBOARD_BROWSER_TESTS=1 (.ci/run does, after scripts/setup.sh installs chromium)")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing: run scripts/setup.sh (it installs the Debian package chromium): %v", chromiumPath, err)
	}
	out := filepath.Join(t.TempDir(), "shot.png")
	cmd := exec.CommandContext(t.Context(), chromiumPath,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--hide-scrollbars", "--window-size=1200,1400",
		"--screenshot="+out, "file://"+html)
	cmd.WaitDelay = 10 * time.Second
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, string(msg))
	f, err := os.Open(out)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	if dir := os.Getenv("OFFBOARD_ARTIFACTS"); dir != "" {
		b, _ := os.ReadFile(out)
		_ = os.WriteFile(filepath.Join(dir, filepath.Base(html)+".png"), b, 0o644)
	}
	return img
}

// countColor counts pixels within a small distance of c.
func countColor(img image.Image, c color.RGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if near(r>>8, c.R) && near(g>>8, c.G) && near(bl>>8, c.B) {
				n++
			}
		}
	}
	return n
}

func near(a uint32, b uint8) bool { d := int(a) - int(b); return d > -4 && d < 4 }

// The report renders on its own: the inline CSS applies (green outcome pills,
// table header shading) with no network.
func TestReportRendersInChromium(t *testing.T) {
	f := getFixture(t)
	html := filepath.Join(runDir(t, f.archived, f.completed), evidence.ReportFile)
	img := screenshot(t, html)
	assert.Equal(t, 1200, img.Bounds().Dx())
	assert.Greater(t, countColor(img, color.RGBA{0xdc, 0xf2, 0xe4, 0xff}), 200, "green 'observed' pills are drawn")
	assert.Greater(t, countColor(img, color.RGBA{0xee, 0xf0, 0xf4, 0xff}), 2000, "table headers are shaded")
	assert.Greater(t, countColor(img, color.RGBA{0x1d, 0x23, 0x30, 0xff}), 500, "text is drawn")
}

func TestSummaryRendersInChromium(t *testing.T) {
	s := evidence.Summarize([]evidence.Manifest{
		manifestOf("E1", 0, time.Minute, false),
		manifestOf("E2", 1, 20*time.Minute, true),
		manifestOf("E3", 2, 4*time.Minute, false),
	}, t0, t0.Add(7*24*time.Hour))
	path := filepath.Join(t.TempDir(), "summary.html")
	fh, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, s.WriteHTML(fh))
	require.NoError(t, fh.Close())
	img := screenshot(t, path)
	assert.Greater(t, countColor(img, color.RGBA{0x3d, 0x9a, 0x62, 0xff}), 300, "green bars in the SVG chart")
	assert.Greater(t, countColor(img, color.RGBA{0xc4, 0x31, 0x4b, 0xff}), 300, "the late run's red bar")
}
