package scripts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// Bounds of what a Host reads to tell whether a script changed: a bundle is
// small source code, but its directory may hold other files.
const (
	maxPrintEntries = 4 * maxBundleFiles // files and links hashed in a bundle directory
	maxPrintBytes   = 16 << 20           // bytes read per check; larger files are compared by size and time
	maxWatchDirs    = 256                // directories watched in a bundle
	maxLinkHops     = 40                 // symbolic links followed in one path, as the kernel does
)

// chain is how a path resolves, one component at a time as the kernel does
// it: every directory entry looked up on the way (each in a resolved
// directory, so that they are the names watch events carry), the symbolic
// links among them, and where the path ends.
type chain struct {
	visited []string // entries looked up, in order
	links   []string // the visited entries that are symbolic links
	target  string   // the resolved path; "" when it does not resolve
}

// last is the last entry looked up: the target, or the first one missing.
func (c chain) last() string {
	if len(c.visited) == 0 {
		return ""
	}
	return c.visited[len(c.visited)-1]
}

// resolve follows the symbolic links of the absolute path p.
func resolve(p string) chain {
	var c chain
	sep := string(filepath.Separator)
	vol := filepath.VolumeName(p)
	root := vol + sep
	done := root
	rest := strings.Split(strings.TrimPrefix(filepath.Clean(p), root), sep)
	hops := 0
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			done = filepath.Dir(done) // done has no links: lexical is right
			continue
		}
		next := filepath.Join(done, name)
		c.visited = append(c.visited, next)
		fi, err := os.Lstat(next)
		if err != nil {
			return c
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if len(rest) > 0 && !fi.IsDir() {
				return c
			}
			done = next
			continue
		}
		c.links = append(c.links, next)
		if hops++; hops > maxLinkHops {
			return c
		}
		t, err := os.Readlink(next)
		if err != nil {
			return c
		}
		if filepath.IsAbs(t) {
			done = root
			t = strings.TrimPrefix(t, root)
		}
		rest = append(strings.Split(t, sep), rest...)
	}
	c.target = done
	return c
}

// filesPrint is what a check compares: a digest of every file a version of the
// script is made of (the file and its cases file, or each file of the
// bundle directory, by content), and the ID that content has as a version.
type filesPrint struct {
	sum     uint64
	id      string // version ID of the content (see contentID)
	missing bool   // the script's path does not exist
}

// fingerprint reads the script's files as they are now.
func (h *Host) fingerprint() filesPrint {
	fi, err := os.Stat(h.abs)
	if errors.Is(err, fs.ErrNotExist) {
		return filesPrint{missing: true}
	}
	p := &printer{sum: xxhash.New(), budget: maxPrintBytes}
	if err != nil {
		fmt.Fprintf(p.sum, "error\x00%s", err)
		return filesPrint{sum: p.sum.Sum64()}
	}
	if !fi.IsDir() {
		src := p.file("file", h.abs, fi)
		cases := strings.TrimSuffix(h.abs, filepath.Ext(h.abs)) + ".cases.yaml"
		if ci, err := os.Stat(cases); err == nil && ci.Mode().IsRegular() {
			p.file("cases", cases, ci)
		}
		return filesPrint{sum: p.sum.Sum64(), id: contentID(map[string][]byte{filepath.Base(h.path): src})}
	}
	root, err := filepath.EvalSymlinks(h.abs)
	if err != nil {
		fmt.Fprintf(p.sum, "error\x00%s", err)
		return filesPrint{sum: p.sum.Sum64()}
	}
	p.sum.WriteString("bundle\x00")
	mods := map[string][]byte{}
	n := 0
	filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if err != nil {
			fmt.Fprintf(p.sum, "error\x00%s\x00%s\x00", rel, err)
			return nil
		}
		if e.IsDir() {
			return nil
		}
		if n++; n > maxPrintEntries {
			p.sum.WriteString("more\x00")
			return fs.SkipAll
		}
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(path)
			fmt.Fprintf(p.sum, "link\x00%s\x00%s\x00%v\x00", rel, t, err)
		case e.Type().IsRegular():
			info, err := e.Info()
			if err != nil {
				fmt.Fprintf(p.sum, "error\x00%s\x00%s\x00", rel, err)
				return nil
			}
			src := p.file(rel, path, info)
			if src != nil && (strings.HasSuffix(rel, ".js") || strings.HasSuffix(rel, ".json")) {
				mods[rel] = src
			}
		}
		return nil
	})
	return filesPrint{sum: p.sum.Sum64(), id: contentID(mods)}
}

// printer hashes files into a fingerprint.
type printer struct {
	sum    *xxhash.Digest
	budget int64
}

// file hashes one file under key: its content (returned) when it is small
// enough to be a script's, its size and modification time otherwise.
func (p *printer) file(key, path string, fi fs.FileInfo) []byte {
	if fi.Size() <= maxFileBytes && fi.Size() <= p.budget {
		data, err := os.ReadFile(path)
		if err == nil {
			p.budget -= int64(len(data))
			fmt.Fprintf(p.sum, "file\x00%s\x00%d\x00", key, len(data))
			p.sum.Write(data)
			return data
		}
		fmt.Fprintf(p.sum, "error\x00%s\x00%s\x00", key, err)
		return nil
	}
	fmt.Fprintf(p.sum, "stat\x00%s\x00%d\x00%d\x00", key, fi.Size(), fi.ModTime().UnixNano())
	return nil
}

// contentID is the version ID of modules (key -> source), computed as a
// compiled version's is. It names content that was refused: for a single
// file it is the ID the file would have had; for a bundle that does not
// compile, it covers every .js and .json file of the directory.
func contentID(mods map[string][]byte) string {
	keys := make([]string, 0, len(mods))
	for k := range mods {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := xxhash.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s\x00%d\x00", k, len(mods[k]))
		h.Write(mods[k])
	}
	return fmt.Sprintf("%016x", h.Sum64())[:12]
}
