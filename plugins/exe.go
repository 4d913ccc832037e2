package plugins

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// A version runs the code it was started from. When a generation is made,
// its binary is copied into the Host's private directory (made by Start
// with mode 0700, removed by Close; those of a gateway that died are
// removed by the next one to start), hashed as it is copied: the version ID
// is that of the bytes copied, and the copy is what the generation's
// processes run, at its start and at every restart. A binary replaced on
// disk is a new version only when a new generation is made (the watcher,
// Reconfigure); a restart after a crash never picks it up.

// exeCopy is a generation's private copy of its binary.
type exeCopy struct {
	path string   // the copy, in the Host's directory
	f    *os.File // the copy, open read-only: its bytes, should the file be removed
	size int64
}

// copyBinary copies o.Path into dir and returns the copy and the version
// ID of the bytes copied (with o's arguments, environment and config).
func copyBinary(dir string, o Options, config []byte) (*exeCopy, string, error) {
	if err := checkExec(dir); err != nil {
		return nil, "", err
	}
	src, err := openBinary(o.Path)
	if err != nil {
		return nil, "", err
	}
	defer src.Close()
	sum := sha256.New()
	tmp, n, err := writeCopy(dir, io.TeeReader(src, sum))
	if err != nil {
		return nil, "", fmt.Errorf("private copy of the binary %s in %s: %w", o.Path, dir, err)
	}
	id := versionSum(sum, o, config)
	// The version in the name: /proc/PID/exe and ps say which one runs.
	path := filepath.Join(dir, "bin-"+id+"-"+strings.TrimPrefix(filepath.Base(tmp), ".bin-"))
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, "", fmt.Errorf("private copy of the binary %s in %s: %w", o.Path, dir, err)
	}
	f, err := os.Open(path)
	if err != nil {
		os.Remove(path)
		return nil, "", fmt.Errorf("private copy of the binary %s in %s: %w", o.Path, dir, err)
	}
	return &exeCopy{path: path, f: f, size: n}, id, nil
}

// writeCopy writes r to a new file in dir, executable by its owner only,
// and closes it: a file still open for writing cannot be executed (text
// file busy).
func writeCopy(dir string, r io.Reader) (path string, n int64, err error) {
	f, err := os.CreateTemp(dir, ".bin-*")
	if err != nil {
		return "", 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if n, err = io.Copy(f, r); err != nil {
		return "", 0, err
	}
	if err = f.Chmod(0o500); err != nil {
		return "", 0, err
	}
	if err = f.Close(); err != nil { // a full disk may only show here
		return "", 0, err
	}
	return f.Name(), n, nil
}

// remove deletes the copy (the generation is stopped: nothing runs it).
func (c *exeCopy) remove() error {
	c.f.Close()
	if err := os.Remove(c.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// ensureExe puts g's copy back, from the file it holds open, when the copy
// was removed while g runs (a cleaner of old files in the temporary
// directory, say), so that a restart still runs g's bytes. It does so only
// in the Host's own directory, still private; any other problem is left to
// the start, which reports it.
func (g *generation) ensureExe() error {
	c := g.exe
	if _, err := os.Lstat(c.path); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	dir := filepath.Dir(c.path)
	if err := privateDir(dir); err != nil {
		return fmt.Errorf("the private copy %s of the binary was removed and cannot be put back: %w", c.path, err)
	}
	sum := sha256.New()
	tmp, _, err := writeCopy(dir, io.TeeReader(io.NewSectionReader(c.f, 0, c.size), sum))
	if err == nil && versionSum(sum, g.opts, g.config) != g.id {
		os.Remove(tmp)
		err = errors.New("its bytes are no longer those of the version")
	}
	if err == nil {
		if err = os.Rename(tmp, c.path); err != nil {
			os.Remove(tmp)
		}
	}
	if err != nil {
		return fmt.Errorf("the private copy %s of the binary was removed and cannot be put back: %w", c.path, err)
	}
	g.log.Warn().Str("copy", c.path).Msg("the private copy of the plugin binary was removed; put back from the open copy")
	return nil
}

// privateDir checks that dir is a directory (not a symlink) of the
// gateway's user that no one else may enter.
func privateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s is no longer the gateway's private directory", dir)
	}
	return nil
}

// versionID hashes what makes a version: the binary's contents (the file
// at o.Path now), its arguments, environment and configuration.
func versionID(o Options, config []byte) (string, error) {
	f, err := openBinary(o.Path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return "", fmt.Errorf("binary: %w", err)
	}
	return versionSum(sum, o, config), nil
}

// openBinary opens the binary at path for reading: a regular file (opening
// a FIFO put there would wait for a writer).
func openBinary(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("binary: %w", err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("binary: %w", err)
	}
	return f, nil
}

// versionSum completes the version ID whose hash has taken the binary's
// contents.
func versionSum(sum hash.Hash, o Options, config []byte) string {
	for _, part := range [][]string{o.Args, o.Env, {string(config)}} {
		fmt.Fprintf(sum, "\x00%d", len(part))
		for _, s := range part {
			fmt.Fprintf(sum, "\x00%d:%s", len(s), s)
		}
	}
	return hex.EncodeToString(sum.Sum(nil))[:12]
}
