package backup

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// staged is an entry of a backup: a directory, or a file of size bytes
// read from disk as it is archived (from), or read before (data).
type staged struct {
	name string // relative to the data directory
	dir  bool
	mode fs.FileMode
	mod  time.Time
	size int64
	data []byte
	from string
}

// collect lists dataDir's directories and files, but for logs, sockets,
// links and the directories skipDir names; inMemory reads the files now.
func collect(dataDir string, skipDir func(rel string) bool, inMemory bool) ([]staged, error) {
	var out []staged
	err := filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dataDir, p)
		if rel == "." {
			return nil
		}
		if skipped(rel, d) || (d.IsDir() && skipDir(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() && !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		s := staged{name: rel, dir: d.IsDir(), mode: info.Mode().Perm(), mod: info.ModTime()}
		switch {
		case s.dir:
		case inMemory:
			if s.data, err = os.ReadFile(p); err != nil {
				return err
			}
			s.size = int64(len(s.data))
		default:
			s.size = info.Size()
			s.from = p
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("backup: reading %s: %w", dataDir, err)
	}
	return out, nil
}

// writeArchive writes the manifest, with the files' count and size, and
// then the files.
func writeArchive(out io.Writer, m *Manifest, files []staged) error {
	for _, f := range files {
		if !f.dir {
			m.Files++
			m.Bytes += f.size
		}
	}
	gz := gzip.NewWriter(out)
	tw := tar.NewWriter(gz)
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: manifestName, Mode: 0o600, Size: int64(len(manifest)), ModTime: m.Created, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := tw.Write(manifest); err != nil {
		return err
	}
	for _, f := range files {
		if err := f.write(tw); err != nil {
			return fmt.Errorf("backup: %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// write archives the entry. A file read from disk that grew or shrank
// since it was listed fails the backup (the tar writer holds it to its
// header's size) rather than being archived torn.
func (s staged) write(tw *tar.Writer) error {
	hdr := &tar.Header{Name: filepath.ToSlash(s.name), Mode: int64(s.mode), ModTime: s.mod, Size: s.size, Typeflag: tar.TypeReg}
	if s.dir {
		hdr.Name += "/"
		hdr.Typeflag = tar.TypeDir
		return tw.WriteHeader(hdr)
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if s.from == "" {
		_, err := tw.Write(s.data)
		return err
	}
	f, err := os.Open(s.from)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(tw, f)
	if err == nil && n != s.size {
		err = fmt.Errorf("changed while read (%d of %d bytes)", n, s.size)
	}
	return err
}
