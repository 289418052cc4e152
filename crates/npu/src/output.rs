//! The command line's conventions for what it writes: atomic files and directories,
//! JSON documents with a schema and the tool's version, text-table cells that keep long
//! names readable, and usage errors (exit status 2).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The tool's version: crate version, git commit and a hash of the sources that decide
/// a result (from `build.rs`).
pub const VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("NPU_GIT_COMMIT"), ", sources ", env!("NPU_SOURCE_HASH"), ")");

/// A wrong use of the command line found after parsing (a flag that cannot apply, a
/// value out of range for this input): reported like clap's own errors, exit status 2.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Returns a [`Usage`] error from a format string.
#[macro_export]
macro_rules! usage {
    ($($t:tt)*) => {
        return Err(anyhow::Error::new($crate::output::Usage(format!($($t)*))))
    };
}

/// Writes `bytes` to `path` atomically: to a temporary file beside it, then renamed, so
/// an interrupted or failed command never leaves a partial file (or a stump of an old one).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".npu-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot write {}: cannot create a file in {}", path.display(), dir.display()))?;
    tmp.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))?;
    tmp.as_file().sync_all().ok();
    tmp.persist(path).map_err(|e| anyhow::anyhow!("cannot write {}: {}", path.display(), e.error))?;
    Ok(())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A directory built in full beside its destination, then put in place as a unit:
/// [`DirWriter::commit`] replaces any old directory of that name, so a failed command
/// leaves the old one untouched and a finished one never mixes old and new files.
pub struct DirWriter {
    dest: PathBuf,
    tmp: tempfile::TempDir,
}

impl DirWriter {
    /// Starts a directory that will become `dest`.
    pub fn new(dest: &Path) -> Result<DirWriter> {
        let parent = parent_dir(dest);
        std::fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
        if dest.exists() && !dest.is_dir() {
            anyhow::bail!("cannot write {}: it exists and is not a directory", dest.display());
        }
        let tmp = tempfile::Builder::new()
            .prefix(".npu-")
            .tempdir_in(&parent)
            .with_context(|| format!("cannot create a directory in {}", parent.display()))?;
        Ok(DirWriter { dest: dest.to_path_buf(), tmp })
    }

    /// Adds a file.
    pub fn file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        std::fs::write(self.tmp.path().join(name), bytes)
            .with_context(|| format!("cannot write {}", self.dest.join(name).display()))
    }

    /// Puts the directory in place of `dest`.
    pub fn commit(self) -> Result<()> {
        let tmp = self.tmp.keep();
        if self.dest.exists() {
            let old = tempfile::Builder::new()
                .prefix(".npu-old-")
                .tempdir_in(parent_dir(&self.dest))
                .with_context(|| format!("cannot replace {}", self.dest.display()))?
                .keep();
            // `old` is an empty directory: rename onto it, then remove it.
            std::fs::rename(&self.dest, &old).with_context(|| format!("cannot replace {}", self.dest.display()))?;
            if let Err(e) = std::fs::rename(&tmp, &self.dest) {
                let _ = std::fs::rename(&old, &self.dest);
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e).with_context(|| format!("cannot write {}", self.dest.display()));
            }
            let _ = std::fs::remove_dir_all(&old);
        } else if let Err(e) = std::fs::rename(&tmp, &self.dest) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e).with_context(|| format!("cannot write {}", self.dest.display()));
        }
        Ok(())
    }
}

/// Refuses to write `output` when it is the same file as `input`.
pub fn not_the_input(output: &Path, input: &Path) -> Result<()> {
    let same = match (std::fs::canonicalize(output), std::fs::canonicalize(input)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        crate::usage!("-o {}: that is the input model; write to another file", output.display());
    }
    Ok(())
}

/// Version of every JSON document `npu` prints or writes; bumped when a field changes
/// meaning or disappears (new fields do not bump it).
pub const SCHEMA_VERSION: u32 = 1;

/// A JSON document of kind `kind` (e.g. `simulate`): `schema` (`npu.KIND/VERSION`) and
/// `npu` (the tool's version) first, then the fields of `body` (an object).
pub fn json_doc(kind: &str, body: serde_json::Value) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("schema".into(), format!("npu.{kind}/{SCHEMA_VERSION}").into());
    m.insert("npu".into(), VERSION.into());
    match body {
        serde_json::Value::Object(o) => m.extend(o),
        other => {
            m.insert("data".into(), other);
        }
    }
    serde_json::Value::Object(m)
}

/// [`json_doc`] pretty-printed with a final newline.
pub fn json_text(kind: &str, body: serde_json::Value) -> Result<String> {
    Ok(serde_json::to_string_pretty(&json_doc(kind, body))? + "\n")
}

/// `name` cut to at most `width` characters for a text table, with an ellipsis in the
/// middle so both the start (the block) and the end (the operator) stay readable; CSV
/// and JSON keep names whole.
pub fn shorten(name: &str, width: usize) -> String {
    let n = name.chars().count();
    if n <= width || width < 5 {
        return name.to_string();
    }
    let keep = width - 1;
    let head = keep / 2;
    let tail = keep - head;
    let mut s: String = name.chars().take(head).collect();
    s.push('…');
    s.extend(name.chars().skip(n - tail));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_keeps_both_ends_and_the_width() {
        assert_eq!(shorten("conv1", 10), "conv1");
        let long = "model/block_1/expand/Conv2D;model/block_1/expand/BiasAdd;model/block_1/expand_relu/Relu6";
        let s = shorten(long, 28);
        assert_eq!(s.chars().count(), 28);
        assert!(s.starts_with("model/block_1") && s.ends_with("relu/Relu6"), "{s}");
        assert!(s.contains('…'));
    }

    #[test]
    fn json_doc_puts_schema_and_version_first() {
        let d = json_doc("zoo", serde_json::json!({"models": []}));
        let keys: Vec<&String> = d.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["schema", "npu", "models"]);
        assert_eq!(d["schema"], "npu.zoo/1");
    }
}
