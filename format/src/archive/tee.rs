//! Byte counting and whole-file digests (SHA-256 for `SHA256SUMS`, BLAKE2b-512 for the
//! detached minisign signature), taken from the same pass that writes or reads a bundle.

use std::cell::Cell;
#[cfg(feature = "writer")]
use std::io::Write;
use std::io::{self, Read};
use std::rc::Rc;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use blake2::Digest as _;

use crate::digest::{Hasher, Sha256};

/// The digests of a whole bundle file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputDigests {
    pub sha256: Sha256,
    pub blake2b512: [u8; 64],
    pub size: u64,
}

/// SHA-256 and BLAKE2b-512 of one stream, in order.
#[derive(Default)]
struct Hashers {
    sha256: sha2::Sha256,
    blake2b: blake2::Blake2b512,
}

impl Hashers {
    fn update(&mut self, data: &[u8]) {
        sha2::Digest::update(&mut self.sha256, data);
        self.blake2b.update(data);
    }
}

/// Bytes handed to the hashing thread at a time.
const CHUNK: usize = 256 << 10;
/// Chunks on their way to the hashing thread; with the one it hashes and the one being
/// filled, at most `QUEUE + 2` chunks (1.5 MiB) exist.
const QUEUE: usize = 4;

/// The hashing thread's end: chunks in order, empty buffers back for reuse.
struct Background {
    to_hasher: SyncSender<Vec<u8>>,
    spare: Receiver<Vec<u8>>,
    hasher: JoinHandle<Hashers>,
}

/// Whole-stream digests, taken on a second thread once the stream is larger than one
/// chunk, so that hashing overlaps decompressing (reading) or compressing (writing): the
/// same bytes in the same order, only not on the thread that waits for them.
#[derive(Default)]
pub(crate) struct Digests {
    /// Bytes not yet handed over (all of them while the stream is small).
    pending: Vec<u8>,
    background: Option<Background>,
    /// Hashes on this thread when no hashing thread could be started.
    inline: Option<Hashers>,
    size: u64,
}

impl Digests {
    fn update(&mut self, mut data: &[u8]) {
        self.size += data.len() as u64;
        while !data.is_empty() {
            if self.pending.capacity() == 0 {
                self.pending = self.spare_buffer();
            }
            let n = (CHUNK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.pending.len() == CHUNK {
                let full = std::mem::take(&mut self.pending);
                self.hand_over(full);
            }
        }
    }

    /// An empty buffer of `CHUNK` bytes' capacity: one the hashing thread is done with, or
    /// a new one.
    fn spare_buffer(&mut self) -> Vec<u8> {
        self.background
            .as_ref()
            .and_then(|b| b.spare.try_recv().ok())
            .unwrap_or_else(|| Vec::with_capacity(CHUNK))
    }

    fn hand_over(&mut self, mut chunk: Vec<u8>) {
        if let Some(h) = &mut self.inline {
            h.update(&chunk);
            chunk.clear();
            self.pending = chunk;
            return;
        }
        // The first full chunk starts the thread: nothing was hashed before it.
        if self.background.is_none() {
            self.background = spawn_hasher();
        }
        #[allow(clippy::single_match_else)] // both arms are substantial
        match &self.background {
            Some(b) => b
                .to_hasher
                .send(chunk)
                .expect("the hashing thread runs until the digests are finished"),
            None => {
                let mut h = Hashers::default();
                h.update(&chunk);
                self.inline = Some(h);
                chunk.clear();
                self.pending = chunk;
            }
        }
    }

    pub(crate) fn finish(mut self) -> OutputDigests {
        let mut hashers = match (self.background.take(), self.inline.take()) {
            (Some(b), _) => {
                drop(b.to_hasher);
                b.hasher.join().expect("the hashing thread panicked")
            }
            (None, Some(h)) => h,
            (None, None) => Hashers::default(),
        };
        hashers.update(&self.pending);
        OutputDigests {
            sha256: Sha256::from_bytes(sha2::Digest::finalize(hashers.sha256).into()),
            blake2b512: hashers.blake2b.finalize().into(),
            size: self.size,
        }
    }
}

/// Starts the hashing thread; `None` if no thread can be started (then the caller hashes
/// on its own thread, with the same result).
fn spawn_hasher() -> Option<Background> {
    let (to_hasher, chunks) = sync_channel::<Vec<u8>>(QUEUE);
    let (give_back, spare) = sync_channel::<Vec<u8>>(QUEUE + 2);
    let hasher = std::thread::Builder::new()
        .name("ferry-digests".into())
        .spawn(move || {
            let mut hashers = Hashers::default();
            for mut chunk in chunks {
                hashers.update(&chunk);
                chunk.clear();
                // The buffer is only an allocation to reuse: fine to drop if nobody wants it.
                let _ = give_back.try_send(chunk);
            }
            hashers
        })
        .ok()?;
    Some(Background {
        to_hasher,
        spare,
        hasher,
    })
}

/// Payload files at least this large are hashed on a second thread: below it, handing the
/// bytes over costs more than hashing them here.
const OFFLOAD_MIN: u64 = 1 << 20;

/// The thread that hashes large payload files while this one decompresses the next bytes.
/// It is sent chunks of a file, never empty, then an empty one when the file ends (the
/// channel type the hashing thread uses already: each one adds 4 KiB of std's channel
/// code to the static installer); it answers with the file's digest and length.
struct FileWorker {
    jobs: SyncSender<Vec<u8>>,
    spare: Receiver<Vec<u8>>,
    digests: Receiver<(Sha256, u64)>,
}

/// SHA-256 of payload files for one read of a bundle: large files on a worker thread
/// (started on the first one), small ones on the caller's.
#[derive(Default)]
pub(crate) struct FileHashers {
    worker: Option<FileWorker>,
    /// No worker could be started: hash everything here.
    no_thread: bool,
}

impl FileHashers {
    /// A reader that hashes everything read through it, like [`crate::digest::HashingReader`].
    pub(crate) fn reader<R: Read>(&mut self, inner: R, size: u64) -> FileDigestReader<'_, R> {
        if size >= OFFLOAD_MIN && self.worker.is_none() && !self.no_thread {
            self.worker = spawn_file_worker();
            self.no_thread = self.worker.is_none();
        }
        let offload = size >= OFFLOAD_MIN && self.worker.is_some();
        FileDigestReader {
            inner: Some(inner),
            inline: (!offload).then(Hasher::new),
            pending: Vec::new(),
            len: 0,
            hashers: self,
        }
    }
}

fn spawn_file_worker() -> Option<FileWorker> {
    let (jobs, rx) = sync_channel::<Vec<u8>>(QUEUE);
    let (give_back, spare) = sync_channel::<Vec<u8>>(QUEUE + 2);
    let (send_digest, digests) = sync_channel::<(Sha256, u64)>(1);
    std::thread::Builder::new()
        .name("ferry-file-digests".into())
        .spawn(move || {
            let mut h = Hasher::new();
            for mut chunk in rx {
                if chunk.is_empty() {
                    // The file ended: send its digest and start the next one.
                    let done = std::mem::take(&mut h);
                    let len = done.len();
                    if send_digest.send((done.finish(), len)).is_err() {
                        return;
                    }
                } else {
                    h.update(&chunk);
                    chunk.clear();
                    let _ = give_back.try_send(chunk);
                }
            }
        })
        .ok()?;
    Some(FileWorker {
        jobs,
        spare,
        digests,
    })
}

/// Hashes what is read through it, on the worker thread or inline; see [`FileHashers`].
pub(crate) struct FileDigestReader<'a, R> {
    inner: Option<R>,
    /// `Some`: hashed here; `None`: offloaded.
    inline: Option<Hasher>,
    pending: Vec<u8>,
    len: u64,
    hashers: &'a mut FileHashers,
}

impl<R> FileDigestReader<'_, R> {
    /// Sends a chunk of the file (not empty: an empty one ends the file).
    fn send(&mut self, chunk: Vec<u8>) {
        debug_assert!(!chunk.is_empty());
        let worker = self
            .hashers
            .worker
            .as_ref()
            .expect("offloading needs the worker");
        worker
            .jobs
            .send(chunk)
            .expect("the file digest thread runs as long as its reader");
    }

    /// The inner reader, the SHA-256 of everything read and its length.
    pub(crate) fn finish(mut self) -> (R, Sha256, u64) {
        let inner = self.inner.take().expect("finished once");
        #[allow(clippy::single_match_else)] // both arms are substantial
        let digest = match self.inline.take() {
            Some(h) => h.finish(),
            None => {
                let rest = std::mem::take(&mut self.pending);
                if !rest.is_empty() {
                    self.send(rest);
                }
                let worker = self
                    .hashers
                    .worker
                    .as_ref()
                    .expect("offloading needs the worker");
                worker
                    .jobs
                    .send(Vec::new())
                    .expect("the file digest thread runs as long as its reader");
                let (digest, len) = worker
                    .digests
                    .recv()
                    .expect("the file digest thread answers every end of file");
                debug_assert_eq!(len, self.len);
                digest
            }
        };
        (inner, digest, self.len)
    }
}

impl<R> Drop for FileDigestReader<'_, R> {
    fn drop(&mut self) {
        // Dropped unfinished (the read failed): the worker holds part of a file, so it
        // must not hash the next one. Let it go; a later large file starts a new one.
        if self.inline.is_none() && self.inner.is_some() {
            self.hashers.worker = None;
        }
    }
}

impl<R: Read> Read for FileDigestReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.as_mut().expect("not finished").read(buf)?;
        self.len += n as u64;
        if let Some(h) = &mut self.inline {
            h.update(&buf[..n]);
            return Ok(n);
        }
        let mut data = &buf[..n];
        while !data.is_empty() {
            if self.pending.capacity() == 0 {
                self.pending = self
                    .hashers
                    .worker
                    .as_ref()
                    .and_then(|w| w.spare.try_recv().ok())
                    .unwrap_or_else(|| Vec::with_capacity(CHUNK));
            }
            let k = (CHUNK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..k]);
            data = &data[k..];
            if self.pending.len() == CHUNK {
                let full = std::mem::take(&mut self.pending);
                self.send(full);
            }
        }
        Ok(n)
    }
}

/// Writer adapter that digests what passes through.
#[cfg(feature = "writer")]
pub(crate) struct DigestWriter<W> {
    pub(crate) inner: W,
    pub(crate) digests: Digests,
}

#[cfg(feature = "writer")]
impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digests.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reader adapter that digests what passes through and counts it in a shared counter.
pub(crate) struct DigestReader<R> {
    pub(crate) inner: R,
    pub(crate) digests: Digests,
    pub(crate) counter: Counter,
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digests.update(&buf[..n]);
        self.counter.add(n as u64);
        Ok(n)
    }
}

/// A byte count shared between the two ends of a decoder.
#[derive(Clone, Default)]
pub struct Counter(Rc<Cell<u64>>);

impl Counter {
    pub fn get(&self) -> u64 {
        self.0.get()
    }

    fn add(&self, n: u64) {
        self.0.set(self.0.get() + n);
    }
}

/// Stops a decompression bomb: fails once the output exceeds `ratio` times the compressed
/// input read so far (after a floor, since small inputs have noisy ratios).
pub(crate) struct RatioGuard<R> {
    pub(crate) inner: R,
    pub(crate) compressed: Counter,
    pub(crate) decompressed: u64,
    pub(crate) ratio: u64,
    pub(crate) floor: u64,
}

impl<R: Read> Read for RatioGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.decompressed += n as u64;
        if self.decompressed > self.floor
            && self.decompressed > self.compressed.get().saturating_mul(self.ratio)
        {
            return Err(io::Error::other(RatioExceeded {
                decompressed: self.decompressed,
                compressed: self.compressed.get(),
            }));
        }
        Ok(n)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{decompressed} bytes decompressed from {compressed}")]
pub(crate) struct RatioExceeded {
    pub(crate) decompressed: u64,
    pub(crate) compressed: u64,
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test data generators
mod tests {
    use super::*;

    fn direct(data: &[u8]) -> OutputDigests {
        let mut h = Hashers::default();
        h.update(data);
        OutputDigests {
            sha256: Sha256::from_bytes(sha2::Digest::finalize(h.sha256).into()),
            blake2b512: h.blake2b.finalize().into(),
            size: data.len() as u64,
        }
    }

    #[test]
    fn background_digests_equal_direct_ones_at_every_size() {
        let data: Vec<u8> = (0..(3 * CHUNK + 12_345))
            .map(|i| (i * 7 + i / 1000) as u8)
            .collect();
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, data.len()] {
            for step in [1000, 4096, CHUNK, 3 * CHUNK] {
                let mut d = Digests::default();
                for piece in data[..len].chunks(step) {
                    d.update(piece);
                }
                assert_eq!(d.finish(), direct(&data[..len]), "len {len}, step {step}");
            }
        }
    }

    #[test]
    fn file_digests_equal_direct_ones_inline_or_offloaded() {
        let data: Vec<u8> = (0..(3 * OFFLOAD_MIN as usize + 999))
            .map(|i| (i % 251) as u8)
            .collect();
        let mut hashers = FileHashers::default();
        for len in [
            0,
            10,
            OFFLOAD_MIN as usize - 1,
            OFFLOAD_MIN as usize,
            2 * OFFLOAD_MIN as usize + 5,
            data.len(),
        ] {
            let mut r = hashers.reader(&data[..len], len as u64);
            let mut sink = Vec::new();
            let mut buf = vec![0u8; 7000];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                sink.extend_from_slice(&buf[..n]);
            }
            let (_, digest, n) = r.finish();
            assert_eq!(
                (digest, n),
                (Sha256::of(&data[..len]), len as u64),
                "len {len}"
            );
            assert_eq!(sink, &data[..len]);
        }
    }

    #[test]
    fn an_abandoned_file_does_not_leak_into_the_next() {
        let data = vec![7u8; 3 << 20];
        let mut hashers = FileHashers::default();
        let mut r = hashers.reader(&data[..], data.len() as u64);
        let mut buf = vec![0u8; 1 << 20];
        r.read_exact(&mut buf).unwrap();
        drop(r);
        let mut r = hashers.reader(&data[..], data.len() as u64);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.finish().1, Sha256::of(&data));
    }

    #[test]
    fn dropping_unfinished_digests_stops_the_thread() {
        let mut d = Digests::default();
        d.update(&vec![1u8; 5 * CHUNK]);
        drop(d);
    }
}
