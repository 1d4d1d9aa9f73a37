//! File-system operations for the WAL, all on the glommio executor.
//!
//! Data reads, writes, fdatasync, truncate, rename and unlink go through glommio's io_uring
//! file API. Directory fsync, directory creation and listing have no io_uring form in
//! glommio 0.9 (`Directory::sync` issues fdatasync, which POSIX does not promise to persist
//! directory entries), so they run on glommio's blocking thread pool, the same place glommio
//! itself sends rename/truncate on kernels without io_uring support for them.

use std::io;
use std::path::{Path, PathBuf};

use glommio::io::{BufferedFile, OpenOptions};

use super::WalError;

/// Reads are issued in pieces of this size; the registered io_uring buffers are small.
const READ_CHUNK: usize = 4 << 20;

/// Wraps an error with the operation and path it came from.
pub(super) fn io_err(op: &str, path: &Path, err: impl Into<io::Error>) -> WalError {
    let err: io::Error = err.into();
    WalError::Io(io::Error::new(
        err.kind(),
        format!("{op} {}: {err}", path.display()),
    ))
}

/// Reads a whole file.
pub(super) async fn read_all(path: &Path) -> Result<Vec<u8>, WalError> {
    let file = BufferedFile::open(path)
        .await
        .map_err(|e| io_err("opening", path, e))?;
    let size = file
        .file_size()
        .await
        .map_err(|e| io_err("sizing", path, e))?;
    let size = usize::try_from(size).map_err(|_| io_err("sizing", path, too_big()))?;
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        let want = READ_CHUNK.min(size - out.len());
        let chunk = file
            .read_at(out.len() as u64, want)
            .await
            .map_err(|e| io_err("reading", path, e))?;
        if chunk.is_empty() {
            return Err(io_err(
                "reading",
                path,
                io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while reading"),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    file.close().await.map_err(|e| io_err("closing", path, e))?;
    Ok(out)
}

fn too_big() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "file too large for memory")
}

/// Largest single write. The kernel may perform a buffered io_uring write inline, on the
/// core's thread: bounding each one bounds that stall (a snapshot file is written in pieces).
const MAX_WRITE: usize = 1 << 20;

/// Writes all of `data` at `pos`, retrying short writes.
///
/// glommio takes ownership of each write buffer, so the bytes are copied into a fresh Vec:
/// that keeps the caller's encode buffer (and its capacity) for reuse and leaves the data
/// available if a short write needs a retry. One memcpy per group commit is noise next to
/// the fdatasync that follows.
pub(super) async fn write_all(
    file: &BufferedFile,
    path: &Path,
    data: &[u8],
    pos: u64,
) -> Result<(), WalError> {
    let mut done = 0;
    while done < data.len() {
        let end = data.len().min(done + MAX_WRITE);
        let n = file
            .write_at(data[done..end].to_vec(), pos + done as u64)
            .await
            .map_err(|e| io_err("writing", path, e))?;
        if n == 0 {
            return Err(io_err(
                "writing",
                path,
                io::Error::new(io::ErrorKind::WriteZero, "write returned 0 bytes"),
            ));
        }
        done += n;
    }
    Ok(())
}

/// Opens an existing file for reading and writing.
pub(super) async fn open_rw(path: &Path) -> Result<BufferedFile, WalError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .buffered_open(path)
        .await
        .map_err(|e| io_err("opening", path, e))
}

/// Creates a file that must not exist yet.
pub(super) async fn create_new(path: &Path) -> Result<BufferedFile, WalError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .buffered_open(path)
        .await
        .map_err(|e| io_err("creating", path, e))
}

/// Writes `data` to `tmp` (replacing it), fdatasyncs it and renames it to `path`.
/// The caller fsyncs the directory to make the rename durable.
pub(super) async fn write_file_atomic(
    tmp: &Path,
    path: &Path,
    data: &[u8],
) -> Result<(), WalError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .buffered_open(tmp)
        .await
        .map_err(|e| io_err("creating", tmp, e))?;
    write_all(&file, tmp, data, 0).await?;
    file.fdatasync()
        .await
        .map_err(|e| io_err("syncing", tmp, e))?;
    file.close().await.map_err(|e| io_err("closing", tmp, e))?;
    glommio::io::rename(tmp, path)
        .await
        .map_err(|e| io_err(&format!("renaming to {} from", path.display()), tmp, e))
}

pub(super) async fn remove(path: &Path) -> Result<(), WalError> {
    glommio::io::remove(path)
        .await
        .map_err(|e| io_err("removing", path, e))
}

/// fsyncs a directory so that entries created, renamed or removed in it are durable.
pub(super) async fn sync_dir(dir: &Path) -> Result<(), WalError> {
    let owned = dir.to_path_buf();
    blocking(move || std::fs::File::open(&owned)?.sync_all())
        .await
        .map_err(|e| io_err("syncing directory", dir, e))
}

/// Creates `dir` (and missing parents). If it was created, the parent is fsynced so the
/// new directory itself survives a crash.
pub(super) async fn create_dir(dir: &Path) -> Result<(), WalError> {
    let owned = dir.to_path_buf();
    blocking(move || {
        if owned.is_dir() {
            return Ok(());
        }
        std::fs::create_dir_all(&owned)?;
        match owned.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => {
                std::fs::File::open(parent)?.sync_all()
            }
            _ => Ok(()),
        }
    })
    .await
    .map_err(|e| io_err("creating directory", dir, e))
}

/// Names of the regular files in `dir`. Names that are not UTF-8 are returned as `Err`
/// so the caller can report them.
pub(super) async fn list_dir(dir: &Path) -> Result<Vec<Result<String, PathBuf>>, WalError> {
    let owned = dir.to_path_buf();
    blocking(move || {
        let mut names = Vec::new();
        for item in std::fs::read_dir(&owned)? {
            let item = item?;
            if !item.file_type()?.is_file() {
                continue;
            }
            names.push(item.file_name().into_string().map_err(|_| item.path()));
        }
        Ok(names)
    })
    .await
    .map_err(|e| io_err("listing", dir, e))
}

async fn blocking<T, F>(f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    glommio::executor().spawn_blocking(f).await
}
