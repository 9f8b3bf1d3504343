package directory

import (
	"context"
	"os"
	"sync"
	"time"
)

// ReloadingFile is a FileDirectory that follows its file: when the file
// changes (size or modification time), the next lookup after Every reads
// it again, with no restart. A file that no longer parses keeps the last
// good one in use, and OnError is told (once per change) what is wrong,
// naming the line or the entry.
type ReloadingFile struct {
	Path string
	// Every bounds how often the file is looked at (1 s when zero).
	Every time.Duration
	// OnError is told when a changed file cannot be used.
	OnError func(err error)
	// OnReload is told when a changed file was loaded.
	OnReload func(people int)
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu      sync.Mutex
	cur     *FileDirectory
	size    int64
	mod     time.Time
	checked time.Time
}

// OpenReloading loads path (an error if it cannot be used at the start)
// and follows it from then on.
func OpenReloading(path string) (*ReloadingFile, error) {
	d, err := LoadFile(path)
	if err != nil {
		return nil, err
	}
	r := &ReloadingFile{Path: path, cur: d}
	if fi, err := os.Stat(path); err == nil {
		r.size, r.mod = fi.Size(), fi.ModTime()
	}
	return r, nil
}

func (r *ReloadingFile) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// current is the directory in use, read again first if the file changed.
func (r *ReloadingFile) current() *FileDirectory {
	r.mu.Lock()
	defer r.mu.Unlock()
	every := r.Every
	if every <= 0 {
		every = time.Second
	}
	now := r.now()
	if now.Sub(r.checked) < every {
		return r.cur
	}
	r.checked = now
	fi, err := os.Stat(r.Path)
	if err != nil {
		if r.OnError != nil && !r.mod.IsZero() {
			r.OnError(err)
		}
		r.mod = time.Time{}
		return r.cur
	}
	if fi.Size() == r.size && fi.ModTime().Equal(r.mod) {
		return r.cur
	}
	r.size, r.mod = fi.Size(), fi.ModTime()
	d, err := LoadFile(r.Path)
	if err != nil {
		if r.OnError != nil {
			r.OnError(err)
		}
		return r.cur // the last good one
	}
	r.cur = d
	if r.OnReload != nil {
		r.OnReload(d.Len())
	}
	return d
}

// ByOrgUsername is FileDirectory.ByOrgUsername on the current file.
func (r *ReloadingFile) ByOrgUsername(ctx context.Context, name string) (*Person, error) {
	return r.current().ByOrgUsername(ctx, name)
}

// ByEmailLocalPart is FileDirectory.ByEmailLocalPart on the current file.
func (r *ReloadingFile) ByEmailLocalPart(ctx context.Context, local string) (*Person, error) {
	return r.current().ByEmailLocalPart(ctx, local)
}

// BySlackUser is FileDirectory.BySlackUser on the current file.
func (r *ReloadingFile) BySlackUser(id string) (*Person, bool) { return r.current().BySlackUser(id) }

// Mappings is FileDirectory.Mappings on the current file.
func (r *ReloadingFile) Mappings() map[string]string { return r.current().Mappings() }
