package plugins

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// configMap lays a directory out as a Kubernetes ConfigMap volume does:
// dir/NAME -> ..data/NAME, ..data -> ..<timestamp>/, the data in the
// timestamped directory; an update writes a new timestamped directory,
// renames a new ..data symlink over the old one, then removes the old
// directory.
type configMap struct {
	t   *testing.T
	dir string
	n   int
	cur string
}

func (c *configMap) update(files map[string]string) {
	c.t.Helper()
	c.n++
	ts := fmt.Sprintf("..2026_12_04_10_00_%02d.%d", c.n, 1000+c.n)
	if err := os.Mkdir(filepath.Join(c.dir, ts), 0o755); err != nil {
		c.t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(c.dir, ts, name), []byte(data), 0o644); err != nil {
			c.t.Fatal(err)
		}
	}
	tmp := filepath.Join(c.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, "..data")); err != nil {
		c.t.Fatal(err)
	}
	for name := range files {
		link := filepath.Join(c.dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				c.t.Fatal(err)
			}
		}
	}
	if c.cur != "" {
		if err := os.RemoveAll(filepath.Join(c.dir, c.cur)); err != nil {
			c.t.Fatal(err)
		}
	}
	c.cur = ts
}

// waitVersion waits until the plugin answers with the configured version.
func waitVersion(t *testing.T, h *Host, version string) {
	t.Helper()
	eventually(t, 5*time.Second, "version "+version, func() bool {
		d, err := validate(h, time.Second)
		return err == nil && d.Labels["version"] == version
	})
}

// eventsOnly is a poll interval no test waits for: what a test sees, the
// watcher saw in an event.
const eventsOnly = time.Hour

// TestConfigMapSwap: a config file in a ConfigMap volume is reloaded when
// the ConfigMap is updated (its ..data symlink swapped), as a file edited
// in place is; a swap to the same contents, and other files written in the
// directory, make no new version.
func TestConfigMapSwap(t *testing.T) {
	e := newEnv(t)
	cm := &configMap{t: t, dir: t.TempDir()}
	cm.update(map[string]string{"mb.json": `{"version": "one"}`, "other.txt": "x"})
	o := e.options(bin.misbehave)
	o.ConfigFile, o.Watch, o.ReloadDebounce = filepath.Join(cm.dir, "mb.json"), true, 20*time.Millisecond
	o.pollInterval = eventsOnly
	h := e.start(o)
	waitVersion(t, h, "one")

	cm.update(map[string]string{"mb.json": `{"version": "two"}`, "other.txt": "x"})
	waitVersion(t, h, "two")
	// The second swap: the watcher followed the new target.
	cm.update(map[string]string{"mb.json": `{"version": "three"}`, "other.txt": "x"})
	waitVersion(t, h, "three")
	if st := h.Stats(); st.Reloads != 2 || st.Refusals != 0 {
		t.Fatalf("stats after two updates: %+v", st)
	}

	// The same contents, another file changed, a file written next to
	// them: no new version (the next real update is the third reload).
	cm.update(map[string]string{"mb.json": `{"version": "three"}`, "other.txt": "y"})
	if err := os.WriteFile(filepath.Join(cm.dir, "..unrelated"), []byte("noise"), 0o644); err != nil {
		t.Fatal(err)
	}
	cm.update(map[string]string{"mb.json": `{"version": "four"}`, "other.txt": "y"})
	waitVersion(t, h, "four")
	if st := h.Stats(); st.Reloads != 3 {
		t.Fatalf("reloads %d after an update with the same config and one with another, want 3", st.Reloads)
	}
}

// TestSymlinkTargetEdited: a config file that is a symlink into another
// directory is reloaded when its target is edited in place, and when the
// symlink is pointed at another file.
func TestSymlinkTargetEdited(t *testing.T) {
	e := newEnv(t)
	dir, data := t.TempDir(), t.TempDir()
	target := filepath.Join(data, "real.json")
	if err := os.WriteFile(target, []byte(`{"version": "one"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "mb.json")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	o := e.options(bin.misbehave)
	o.ConfigFile, o.Watch, o.ReloadDebounce = link, true, 20*time.Millisecond
	o.pollInterval = eventsOnly
	h := e.start(o)
	waitVersion(t, h, "one")

	if err := os.WriteFile(target, []byte(`{"version": "two"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	waitVersion(t, h, "two")

	// The link retargeted, atomically, to a file in a third directory.
	elsewhere := filepath.Join(t.TempDir(), "new.json")
	if err := os.WriteFile(elsewhere, []byte(`{"version": "three"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, link+".tmp"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(link+".tmp", link); err != nil {
		t.Fatal(err)
	}
	waitVersion(t, h, "three")
	// And that one edited in place: its directory is followed.
	if err := os.WriteFile(elsewhere, []byte(`{"version": "four"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	waitVersion(t, h, "four")
}

// TestBinarySymlinkTarget: a watched binary that is a symlink into a
// release directory is reloaded when the binary there is replaced.
func TestBinarySymlinkTarget(t *testing.T) {
	e := newEnv(t)
	dir, release := t.TempDir(), t.TempDir()
	real := filepath.Join(release, "plugin")
	copyFile(t, bin.misbehave, real)
	link := filepath.Join(dir, "plugin")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	o := e.options(link)
	o.Watch, o.ReloadDebounce, o.pollInterval = true, 20*time.Millisecond, eventsOnly
	h := e.start(o)
	v1 := h.Current()
	copyFile(t, bin.misbehave2, real)
	eventually(t, 5*time.Second, "build 2 serving", func() bool {
		d, err := validate(h, time.Second)
		return err == nil && d.Labels["build"] == "2"
	})
	if h.Current() == v1 || h.Stats().Reloads != 1 {
		t.Fatalf("stats: %+v", h.Stats())
	}
}

// TestWatchPoll: a change no watched directory sees (a symlink in the
// middle of a chain, in a directory of its own, pointed elsewhere) is
// found by the periodic check.
func TestWatchPoll(t *testing.T) {
	e := newEnv(t)
	dir, mid, a, b := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	for d, v := range map[string]string{a: "one", b: "two"} {
		if err := os.WriteFile(filepath.Join(d, "mb.json"), []byte(`{"version": "`+v+`"}`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hop := filepath.Join(mid, "mb.json")
	if err := os.Symlink(filepath.Join(a, "mb.json"), hop); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "mb.json")
	if err := os.Symlink(hop, link); err != nil {
		t.Fatal(err)
	}
	o := e.options(bin.misbehave)
	o.ConfigFile, o.Watch, o.ReloadDebounce = link, true, 20*time.Millisecond
	o.pollInterval = 50 * time.Millisecond
	h := e.start(o)
	waitVersion(t, h, "one")
	if err := os.Symlink(filepath.Join(b, "mb.json"), hop+".tmp"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(hop+".tmp", hop); err != nil {
		t.Fatal(err)
	}
	waitVersion(t, h, "two")
}
