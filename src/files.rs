//! Files teamsync writes for people: reports, exports, saved plans, the metrics file.
//!
//! They name every user of a tenant, so they are created readable by the owner and group
//! only, and they are replaced whole (a temporary file renamed into place), so a reader —
//! a browser, node_exporter's textfile collector, `apply --plan` — never sees half a file.

use std::io::Write;
use std::path::Path;

/// Writes a file teamsync produces (report, export, saved plan) through a temporary file
/// renamed into place, so a reader never sees half of it. A new file is created readable
/// by its owner and group only (0640): exports and reports name every user of a tenant.
/// An existing file is replaced with the same restriction. A path that exists and is not
/// a regular file (`/dev/stdout`, a named pipe) is written in place.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic(path, bytes, 0o640)
}

/// [`write_private`] with the mode of a new file given (the metrics file is 0644: the
/// textfile collector runs as another user).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        return f.write_all(bytes).and_then(|()| f.flush());
    }
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path names no file"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let written = opts.open(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_are_private_and_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("report.html");
        write_private(&p, b"first").unwrap();
        write_private(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & 0o037, 0, "group write and others: none ({mode:o})");
        }
        // Nothing left behind but the file itself.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        let e = write_private(&dir.path().join("missing/x.html"), b"x").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}
