// Package logfile provides an io.Writer backed by a file that can be reopened
// at runtime, for use with logrotate's "create" mode: logrotate renames the
// file, creates a new one, then signals the service, which calls Reopen.
//
// Writes and Reopen are serialised by a mutex, so a log record is written
// either entirely to the old file or entirely to the new one.
package logfile

import (
	"os"
	"sync"
)

// Mode is the permission used when the file has to be created (before umask).
const Mode os.FileMode = 0o640

const flags = os.O_WRONLY | os.O_APPEND | os.O_CREATE

// File is a reopenable append-only log file. The zero value is not usable;
// create one with Open.
type File struct {
	path string

	mu sync.Mutex
	f  *os.File
}

// Open opens (creating if necessary) path for appending. It never creates
// directories.
func Open(path string) (*File, error) {
	f, err := os.OpenFile(path, flags, Mode)
	if err != nil {
		return nil, err
	}
	return &File{path: path, f: f}, nil
}

// Path returns the path the file was opened with.
func (w *File) Path() string { return w.path }

// Write appends p to the current file.
func (w *File) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return 0, os.ErrClosed
	}
	return w.f.Write(p)
}

// Reopen opens the path again and atomically swaps it in for subsequent
// writes, then closes the previous file. If the path cannot be opened the
// current file is kept and the error is returned, so logging continues.
func (w *File) Reopen() error {
	nf, err := os.OpenFile(w.path, flags, Mode)
	if err != nil {
		return err
	}
	w.mu.Lock()
	old := w.f
	if old == nil {
		w.mu.Unlock()
		nf.Close()
		return os.ErrClosed
	}
	w.f = nf
	w.mu.Unlock()
	// No writer can hold old any more: every Write takes the mutex.
	return old.Close()
}

// Close closes the file. Later writes fail with os.ErrClosed.
func (w *File) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return os.ErrClosed
	}
	err := w.f.Close()
	w.f = nil
	return err
}
