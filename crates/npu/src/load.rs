//! Reading from disk: every file npu reads goes through [`read_file`], which holds it to
//! the `file_bytes` limit; programs and hardware descriptions.

use std::io::Read as _;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use npu_isa::{assemble, Error, Program};

/// An error already rendered in full (assembler diagnostics); printed as it is.
#[derive(Debug)]
pub struct Reported(pub String);

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Reported {}

/// Reads a whole file, refusing one larger than the `file_bytes` limit
/// ([`npu_data::limits`]): a regular file by its size before anything is read, anything
/// else (`/dev/zero`, a pipe) by reading no further than the limit.
pub fn read_file(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    let limit = npu_data::limits::current().file_bytes;
    let cannot = || format!("cannot read {}", path.display());
    let f = std::fs::File::open(path).with_context(cannot)?;
    let meta = f.metadata().with_context(cannot)?;
    let too_large = |size: String| {
        anyhow!("cannot read {}: {size} than {}", path.display(), npu_data::limits::named("file_bytes", limit))
    };
    if meta.is_file() && meta.len() > limit {
        return Err(too_large(format!("{} bytes, more", meta.len())));
    }
    let mut bytes = Vec::with_capacity(if meta.is_file() { meta.len() as usize } else { 0 });
    f.take(limit + 1).read_to_end(&mut bytes).with_context(cannot)?;
    if bytes.len() as u64 > limit {
        return Err(too_large("more bytes".into()));
    }
    Ok(bytes)
}

/// Reads a whole text file (UTF-8) as [`read_file`] does.
pub fn read_text(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    String::from_utf8(read_file(path)?).map_err(|e| {
        anyhow!("cannot read {}: not UTF-8 text (byte {} is not valid)", path.display(), e.utf8_error().valid_up_to())
    })
}

/// Assembles a `.s` file; on errors, the message is every diagnostic rendered.
pub fn assemble_file(path: &Path) -> Result<Program> {
    let text = read_text(path)?;
    assemble(&text, &path.display().to_string()).map_err(|e| match e {
        Error::Assembly(d) => anyhow::Error::new(Reported(d.render())),
        other => anyhow!(other),
    })
}

/// Reads a program binary.
pub fn read_binary(path: &Path) -> Result<Program> {
    let bytes = read_file(path)?;
    Program::from_bytes(&bytes).with_context(|| format!("{} is not a valid program", path.display()))
}

/// Reads a program from assembly (`.s`/`.asm`) or binary (anything else).
pub fn read_program(path: &Path) -> Result<Program> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("s" | "asm") => assemble_file(path),
        _ => read_binary(path),
    }
}

/// A hardware description: a preset name or a RON file.
pub fn hardware(spec: &str) -> Result<npu_hw::HwConfig> {
    let path = Path::new(spec);
    if spec.ends_with(".ron") || path.is_file() {
        let text = read_text(path)?;
        return Ok(npu_hw::HwConfig::from_ron(&text, spec)?);
    }
    Ok(npu_hw::preset(spec)?)
}

/// How to print a dumped region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Signed bytes.
    I8,
    /// Unsigned bytes.
    U8,
    /// Little-endian int32 words.
    I32,
    /// Hex bytes.
    Hex,
}

/// A memory region to print after a run: `SPACE:ADDR:LEN[:FORMAT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    space: npu_isa::Space,
    addr: u64,
    len: u64,
    format: Format,
}

impl Region {
    /// The region as it is written on the command line.
    pub fn spec(&self) -> String {
        let f = match self.format {
            Format::I8 => "i8",
            Format::U8 => "u8",
            Format::I32 => "i32",
            Format::Hex => "hex",
        };
        format!("{}:{:#x}:{}:{f}", self.space, self.addr, self.len)
    }
}

fn number(text: &str, what: &str, spec: &str) -> Result<u64> {
    let t = text.trim();
    let v = if let Some(h) = t.strip_prefix("0x") { u64::from_str_radix(h, 16) } else { t.parse() };
    v.map_err(|_| anyhow!("--dump {spec}: {what} `{text}` is not a number"))
}

impl Region {
    /// Parses `SPACE:ADDR:LEN[:FORMAT]`.
    pub fn parse(spec: &str) -> Result<Region> {
        let parts: Vec<&str> = spec.split(':').collect();
        if !(3..=4).contains(&parts.len()) {
            anyhow::bail!("--dump {spec}: expected SPACE:ADDR:LEN[:i8|u8|i32|hex], e.g. sram:0x100:32:i8");
        }
        let space = npu_isa::Space::from_name(parts[0]).ok_or_else(|| {
            anyhow!(
                "--dump {spec}: unknown memory `{}` (expected one of: {})",
                parts[0],
                npu_isa::Space::NAMES.join(", ")
            )
        })?;
        let addr = number(parts[1], "address", spec)?;
        let len = number(parts[2], "length", spec)?;
        let format = match parts.get(3).copied().unwrap_or("hex") {
            "i8" => Format::I8,
            "u8" => Format::U8,
            "i32" => Format::I32,
            "hex" => Format::Hex,
            f => anyhow::bail!("--dump {spec}: unknown format `{f}` (expected i8, u8, i32 or hex)"),
        };
        if format == Format::I32 && len % 4 != 0 {
            anyhow::bail!("--dump {spec}: length {len} is not a multiple of 4 for i32");
        }
        Ok(Region { space, addr, len, format })
    }

    /// The region's contents, formatted; an error if it lies outside the memory.
    pub fn show(&self, m: &npu_sim::Machine) -> Result<String> {
        let bytes = m.read(self.space, self.addr, self.len).ok_or_else(|| {
            anyhow!(
                "--dump {}:{:#x}:{}: outside the {}-byte {} memory",
                self.space,
                self.addr,
                self.len,
                m.bytes(self.space).len(),
                self.space
            )
        })?;
        let vals: Vec<String> = match self.format {
            Format::I8 => bytes.iter().map(|b| (*b as i8).to_string()).collect(),
            Format::U8 => bytes.iter().map(|b| b.to_string()).collect(),
            Format::Hex => bytes.iter().map(|b| format!("{b:02x}")).collect(),
            Format::I32 => bytes.chunks(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]).to_string()).collect(),
        };
        let per_line = if self.format == Format::I32 { 8 } else { 16 };
        let mut s = format!("\n{} {:#x}..{:#x}:\n", self.space, self.addr, self.addr + self.len);
        for line in vals.chunks(per_line) {
            s.push_str("  ");
            s.push_str(&line.join(" "));
            s.push('\n');
        }
        Ok(s)
    }
}

/// Loads a model: `zoo:NAME`, an ONNX file or an npu model file (.npum).
pub fn model(path: &Path) -> Result<npu_model::Model> {
    if let Some(name) = path.to_str().and_then(|s| s.strip_prefix("zoo:")) {
        return Ok(npu_zoo::trained(name)?);
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("npum") => {
            let bytes = read_file(path)?;
            Ok(npu_model::modelfile::decode(&bytes, &path.display().to_string())?)
        }
        Some("onnx") => {
            let bytes = read_file(path)?;
            Ok(npu_onnx::import(&bytes, &path.display().to_string())?)
        }
        Some("tflite") => {
            let t = tflite(path)?;
            if !t.hybrid.is_empty() {
                tracing::warn!(
                    "{}: a hybrid model (int8 weights in {} layers, float activations): it runs as TFLite's hybrid \
                     kernels run it, each of those layers' inputs quantized per sample; `npu quantize` makes it fully integer",
                    path.display(),
                    t.hybrid.len()
                );
            }
            Ok(t.model)
        }
        _ => anyhow::bail!(
            "{}: unknown model format (expected zoo:NAME, an .onnx, .tflite or .npum file)",
            path.display()
        ),
    }
}

/// Imports a TFLite model (float, or int8 with its quantized form).
pub fn tflite(path: &Path) -> Result<npu_tflite::Imported> {
    let bytes = read_file(path)?;
    Ok(npu_tflite::import(&bytes, &path.display().to_string())?)
}

/// Whether `path` names a TFLite file.
pub fn is_tflite(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "tflite")
}

/// Whether `path` is a model that is quantized already: an .npuq, or an int8 .tflite.
pub fn is_quantized(path: &Path) -> Result<bool> {
    if path.extension().is_some_and(|e| e == "npuq") {
        return Ok(true);
    }
    Ok(is_tflite(path) && tflite(path)?.quantized.is_some())
}

/// A directory `npu compile` wrote, as it was written: `program.bin` with its manifest
/// `compiled.ron`, the quantized model and the hardware description; each checked, and
/// the manifest against the other three, checksums included (but the program's when
/// `modified_program`: edited on purpose). Nothing is recompiled.
pub fn compiled(dir: &Path, modified_program: bool) -> Result<npu_app::Deployment> {
    let file = |name: &str| dir.join(name);
    let q = quantized(&file("model.npuq"))?;
    let hw = hardware(&file("hw.ron").display().to_string())?;
    let bin = file("program.bin");
    let bytes = read_file(&bin)?;
    let program = npu_isa::Program::from_bytes(&bytes).with_context(|| format!("{}", bin.display()))?;
    let manifest_path = file("compiled.ron");
    let origin = manifest_path.display().to_string();
    let text = read_text(&manifest_path)?;
    let mut manifest = npu_compile::Manifest::from_ron(&text, &origin)?;
    if modified_program {
        manifest.program_crc32 = npu_compile::program_crc32(&program)?;
    }
    let compiled = npu_compile::Compiled::from_artifact(program, manifest, &q, &hw, &origin)?;
    Ok(npu_app::Deployment::from_compiled(q, hw, compiled))
}

/// Loads a quantized model: an .npuq file, or an int8 .tflite as shipped.
pub fn quantized(path: &Path) -> Result<npu_quant::QModel> {
    if is_tflite(path) {
        return tflite(path)?.quantized.ok_or_else(|| {
            anyhow::anyhow!(
                "{}: a float32 TFLite model has no quantization of its own; quantize it with --scheme",
                path.display()
            )
        });
    }
    let bytes = read_file(path)?;
    Ok(npu_quant::npuq::decode(&bytes, &path.display().to_string())?)
}
